//! Reactions: one row per (message, emoji, member), counted per message when messages are read.

use std::collections::{BTreeMap, HashMap};

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::Reaction;
use sqlx::{Any, QueryBuilder};

use super::Store;
use super::messages::push_message_keys;

impl Store {
    /// Whether `user_id` already reacted with `emoji`, and how many distinct emoji the message has.
    pub async fn reaction_state(
        r: &mut impl Reads,
        conversation_id: &str,
        seq: i64,
        user_id: &str,
        emoji: &str,
    ) -> sqlx::Result<(bool, i64, bool)> {
        let (mine, distinct, used): (i64, i64, i64) = r
            .fetch_one(
                sqlx::query_as(
                    "SELECT COUNT(CASE WHEN user_id = ? AND emoji = ? THEN 1 END), COUNT(DISTINCT emoji), \
                     COUNT(CASE WHEN emoji = ? THEN 1 END) \
                     FROM reactions WHERE conversation_id = ? AND message_seq = ?",
                )
                .bind(user_id)
                .bind(emoji)
                .bind(emoji)
                .bind(conversation_id)
                .bind(seq),
            )
            .await?;
        Ok((mine > 0, distinct, used > 0))
    }

    pub async fn add_reaction(
        tx: &mut WriteTx<'_>,
        conversation_id: &str,
        seq: i64,
        user_id: &str,
        emoji: &str,
        at_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO reactions (conversation_id, message_seq, emoji, user_id, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(conversation_id)
        .bind(seq)
        .bind(emoji)
        .bind(user_id)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Whether there was such a reaction to remove.
    pub async fn remove_reaction(
        tx: &mut WriteTx<'_>,
        conversation_id: &str,
        seq: i64,
        user_id: &str,
        emoji: &str,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "DELETE FROM reactions WHERE conversation_id = ? AND message_seq = ? AND emoji = ? AND user_id = ?",
        )
        .bind(conversation_id)
        .bind(seq)
        .bind(emoji)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A deleted message's reactions go with its content.
    pub async fn clear_reactions(tx: &mut WriteTx<'_>, conversation_id: &str, seq: i64) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM reactions WHERE conversation_id = ? AND message_seq = ?")
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The reactions to some messages of a conversation (`seqs`), per message seq, each emoji
    /// in the order it was first used, `me` as `viewer` sees it (no viewer: never).
    pub(super) async fn reactions(
        r: &mut impl Reads,
        keys: &BTreeMap<&str, Vec<i64>>,
        viewer: Option<&str>,
    ) -> sqlx::Result<HashMap<(String, i64), Vec<Reaction>>> {
        let mut q = QueryBuilder::<Any>::new(
            "SELECT conversation_id, message_seq, emoji, COUNT(*), COUNT(CASE WHEN user_id = ",
        );
        q.push_bind(viewer.unwrap_or("").to_owned());
        q.push(" THEN 1 END) FROM reactions WHERE ");
        push_message_keys(&mut q, "message_seq", keys);
        q.push(" GROUP BY conversation_id, message_seq, emoji ORDER BY conversation_id, message_seq, MIN(created_at_ms), emoji");
        let rows: Vec<(String, i64, String, i64, i64)> = r.fetch_all(q.build_query_as()).await?;
        let mut by_message: HashMap<(String, i64), Vec<Reaction>> = HashMap::new();
        for (conversation_id, seq, emoji, count, mine) in rows {
            by_message.entry((conversation_id, seq)).or_default().push(Reaction {
                emoji,
                count: count as u32,
                me: mine > 0,
            });
        }
        Ok(by_message)
    }
}
