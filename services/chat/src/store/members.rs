//! Members, their roles and read positions.

use std::collections::HashMap;

use soulchat_runtime::{Reads, WriteTx, push_in_list};
use soulchat_subjects::chat::messages::Member;
use soulchat_subjects::time::now_ms;
use sqlx::{Any, FromRow, QueryBuilder};

use super::{Store, sql};

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub role: String,
    pub joined_seq: i64,
    pub joined_at_ms: i64,
    pub read_seq: i64,
}

impl MemberRow {
    pub fn to_proto(&self) -> Member {
        Member {
            user_id: self.user_id.clone(),
            role: self.role.clone(),
            joined_seq: self.joined_seq,
            joined_at_ms: self.joined_at_ms,
        }
    }
}

const MEMBER: &str = "SELECT user_id, role, joined_seq, joined_at_ms, read_seq FROM members";

impl Store {
    pub async fn member(r: &mut impl Reads, conversation_id: &str, user_id: &str) -> sqlx::Result<Option<MemberRow>> {
        r.fetch_optional(
            sqlx::query_as(sql(&[MEMBER, " WHERE conversation_id = ? AND user_id = ?"]))
                .bind(conversation_id)
                .bind(user_id),
        )
        .await
    }

    /// Everyone sharing a live conversation with `user_id`, at most `limit`, except those who
    /// block `user_id` or whom it blocks: neither sees the other's presence.
    pub async fn contacts(r: &mut impl Reads, user_id: &str, limit: i64) -> sqlx::Result<Vec<String>> {
        let query = sqlx::query_as(
            "SELECT DISTINCT other.user_id FROM members mine \
             JOIN members other ON other.conversation_id = mine.conversation_id \
             JOIN conversations c ON c.id = mine.conversation_id \
             WHERE mine.user_id = ? AND other.user_id <> ? AND c.deleted = 0 \
             AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = ? AND b.blocked_id = other.user_id) \
             OR (b.blocker_id = other.user_id AND b.blocked_id = ?)) LIMIT ?",
        )
        .bind(user_id)
        .bind(user_id)
        .bind(user_id)
        .bind(user_id)
        .bind(limit);
        let rows: Vec<(String,)> = r.fetch_all(query).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The members (id, joined seq) and kind of each of `conversations`, in two statements: what
    /// the relay needs to address a batch of events.
    pub async fn audiences(
        r: &mut impl Reads,
        conversations: &[&str],
    ) -> sqlx::Result<HashMap<String, (String, Vec<(String, i64)>)>> {
        let mut audiences: HashMap<String, (String, Vec<(String, i64)>)> = HashMap::new();
        if conversations.is_empty() {
            return Ok(audiences);
        }
        let ids: Vec<String> = conversations.iter().map(|c| c.to_string()).collect();
        let mut q = sqlx::QueryBuilder::<sqlx::Any>::new("SELECT id, kind FROM conversations WHERE id IN ");
        push_in_list(&mut q, &ids);
        let kinds: Vec<(String, String)> = r.fetch_all(q.build_query_as()).await?;
        for (id, kind) in kinds {
            audiences.entry(id).or_default().0 = kind;
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Any>::new(
            "SELECT conversation_id, user_id, joined_seq FROM members WHERE conversation_id IN ",
        );
        push_in_list(&mut q, &ids);
        let members: Vec<(String, String, i64)> = r.fetch_all(q.build_query_as()).await?;
        for (conversation, user, joined) in members {
            audiences.entry(conversation).or_default().1.push((user, joined));
        }
        Ok(audiences)
    }

    /// Members in joining order (oldest first).
    pub async fn members(r: &mut impl Reads, conversation_id: &str) -> sqlx::Result<Vec<MemberRow>> {
        r.fetch_all(
            sqlx::query_as(sql(&[MEMBER, " WHERE conversation_id = ? ORDER BY joined_seq, user_id"]))
                .bind(conversation_id),
        )
        .await
    }

    pub async fn insert_member(
        tx: &mut WriteTx<'_>,
        conversation_id: &str,
        user_id: &str,
        role: &str,
        joined_seq: i64,
    ) -> sqlx::Result<MemberRow> {
        let joined_at_ms = now_ms();
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, role, joined_seq, joined_at_ms, read_seq) VALUES (?, ?, ?, ?, ?, 0)",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(role)
        .bind(joined_seq)
        .bind(joined_at_ms)
        .execute(&mut **tx)
        .await?;
        Self::count_members(tx, conversation_id, 1).await?;
        Ok(MemberRow { user_id: user_id.to_owned(), role: role.to_owned(), joined_seq, joined_at_ms, read_seq: 0 })
    }

    pub async fn set_role(tx: &mut WriteTx<'_>, conversation_id: &str, user_id: &str, role: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ?")
            .bind(role)
            .bind(conversation_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn delete_member(tx: &mut WriteTx<'_>, conversation_id: &str, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Self::count_members(tx, conversation_id, -1).await
    }

    async fn count_members(tx: &mut WriteTx<'_>, conversation_id: &str, delta: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET member_count = member_count + ? WHERE id = ?")
            .bind(delta)
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Moves the read position forward only; answers the position after the call.
    pub async fn mark_read(tx: &mut WriteTx<'_>, conversation_id: &str, user_id: &str, seq: i64) -> sqlx::Result<i64> {
        sqlx::query("UPDATE members SET read_seq = ? WHERE conversation_id = ? AND user_id = ? AND read_seq < ?")
            .bind(seq)
            .bind(conversation_id)
            .bind(user_id)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        let (read,): (i64,) = sqlx::query_as("SELECT read_seq FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(read)
    }

    /// Per conversation, the messages from others after the read position, not deleted: one
    /// count per `(conversation, read_seq)` joined by `UNION ALL` (each an index range), so a
    /// page of conversations costs one statement. A conversation with none is absent.
    pub async fn unread_counts(
        r: &mut impl Reads,
        user_id: &str,
        reads: &[(&str, i64)],
    ) -> sqlx::Result<HashMap<String, i64>> {
        if reads.is_empty() {
            return Ok(HashMap::new());
        }
        let mut q = QueryBuilder::<Any>::new("");
        for (i, (conversation_id, read_seq)) in reads.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT conversation_id, COUNT(*) FROM messages WHERE conversation_id = ")
                .push_bind(conversation_id.to_string())
                .push(" AND seq > ")
                .push_bind(*read_seq)
                .push(" AND sender_id <> ")
                .push_bind(user_id.to_owned())
                .push(" AND deleted = 0 GROUP BY conversation_id");
        }
        let rows: Vec<(String, i64)> = r.fetch_all(q.build_query_as()).await?;
        Ok(rows.into_iter().collect())
    }
}

/// `(a = ? AND b = ?) OR (a = ? AND b = ?) …`: SQLite and MySQL both answer it with one index
/// look-up per pair, where `a IN (…) AND b IN (…)` would probe every combination.
pub(crate) fn push_pairs(q: &mut sqlx::QueryBuilder<sqlx::Any>, (a, b): (&str, &str), pairs: &[(&str, &str)]) {
    for (i, (x, y)) in pairs.iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push(format_args!("({a} = "))
            .push_bind(x.to_string())
            .push(format_args!(" AND {b} = "))
            .push_bind(y.to_string())
            .push(")");
    }
}
