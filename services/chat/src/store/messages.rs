//! Messages: stored by the group committer, edited and deleted in place, paged as history.

use soulchat_runtime::{Reads, WriteTx, push_in_list};
use std::collections::HashMap;

use soulchat_subjects::chat::messages::{Message, ThreadSummary};
use sqlx::{Any, FromRow, QueryBuilder};

use super::members::push_pairs;
use super::{Store, sql};

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub conversation_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub client_id: String,
    pub kind: String,
    pub content: String,
    pub url: Option<String>,
    pub reply_to: Option<i64>,
    pub created_at_ms: i64,
    pub edited_at_ms: Option<i64>,
    pub deleted: i64,
    /// A JSON object of strings, for image and file messages.
    pub metadata: Option<String>,
    pub attachment_id: Option<String>,
    /// A JSON array of user ids.
    pub mention_ids: Option<String>,
    pub thread_root: Option<i64>,
}

impl MessageRow {
    pub fn to_proto(&self) -> Message {
        let deleted = self.deleted != 0;
        Message {
            conversation_id: self.conversation_id.clone(),
            seq: self.seq,
            sender_id: self.sender_id.clone(),
            client_id: self.client_id.clone(),
            kind: self.kind.clone(),
            content: if deleted { String::new() } else { self.content.clone() },
            reply_to: self.reply_to,
            url: if deleted { None } else { self.url.clone() },
            created_at_ms: self.created_at_ms,
            edited_at_ms: self.edited_at_ms,
            deleted,
            metadata: match (&self.metadata, deleted) {
                (Some(json), false) => serde_json::from_str(json).unwrap_or_default(),
                _ => Default::default(),
            },
            attachment_id: if deleted { None } else { self.attachment_id.clone() },
            // Counted apart (`Store::attach`).
            reactions: Vec::new(),
            mention_ids: match (&self.mention_ids, deleted) {
                (Some(json), false) => serde_json::from_str(json).unwrap_or_default(),
                _ => Vec::new(),
            },
            thread_root: self.thread_root,
            // Counted apart (`Store::attach`).
            thread: None,
        }
    }
}

pub(super) const MESSAGE: &str = "SELECT conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
     created_at_ms, edited_at_ms, deleted, metadata, attachment_id, mention_ids, thread_root FROM messages";

impl Store {
    pub async fn message(r: &mut impl Reads, conversation_id: &str, seq: i64) -> sqlx::Result<Option<MessageRow>> {
        r.fetch_optional(
            sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? AND seq = ?"])).bind(conversation_id).bind(seq),
        )
        .await
    }

    /// The messages stored under any of the (sender, client id) pairs: a batch's retries in one
    /// query.
    pub async fn messages_by_clients(r: &mut impl Reads, pairs: &[(&str, &str)]) -> sqlx::Result<Vec<MessageRow>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Any>::new(MESSAGE);
        query.push(" WHERE ");
        push_pairs(&mut query, ("sender_id", "client_id"), pairs);
        r.fetch_all(query.build_query_as()).await
    }

    pub async fn last_message(r: &mut impl Reads, conversation_id: &str) -> sqlx::Result<Option<MessageRow>> {
        r.fetch_optional(
            sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1"]))
                .bind(conversation_id),
        )
        .await
    }

    pub async fn edit_message(
        tx: &mut WriteTx<'_>,
        conversation_id: &str,
        seq: i64,
        content: &str,
        mention_ids: &[String],
        at_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE messages SET content = ?, mention_ids = ?, edited_at_ms = ? WHERE conversation_id = ? AND seq = ?",
        )
        .bind(content)
        .bind(mentions_json(mention_ids))
        .bind(at_ms)
        .bind(conversation_id)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Keeps the row (its seq and client id stay taken) but not the content.
    pub async fn delete_message(tx: &mut WriteTx<'_>, conversation_id: &str, seq: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE messages SET deleted = 1, content = '', url = NULL, metadata = NULL, mention_ids = NULL \
             WHERE conversation_id = ? AND seq = ?",
        )
        .bind(conversation_id)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Up to `limit` messages strictly between `after` and `before`, ascending; the newest
    /// ones unless `oldest_first`. The main history (`thread` none) or one thread's replies.
    pub async fn history(
        r: &mut impl Reads,
        conversation_id: &str,
        thread: Option<i64>,
        (after, before): (i64, i64),
        limit: i64,
        oldest_first: bool,
    ) -> sqlx::Result<Vec<MessageRow>> {
        let order = if oldest_first { " ORDER BY seq ASC LIMIT ?" } else { " ORDER BY seq DESC LIMIT ?" };
        let of_thread = if thread.is_some() { " AND thread_root = ?" } else { " AND thread_root IS NULL" };
        let query =
            sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? AND seq > ? AND seq < ?", of_thread, order]))
                .bind(conversation_id)
                .bind(after)
                .bind(before);
        let query = match thread {
            Some(root) => query.bind(root),
            None => query,
        }
        .bind(limit);
        let mut rows: Vec<MessageRow> = r.fetch_all(query).await?;
        if !oldest_first {
            rows.reverse();
        }
        Ok(rows)
    }
}

impl Store {
    /// Fills in what is counted apart from the rows: reactions (`me` as `viewer` sees them) and
    /// thread summaries. Two statements per conversation among `messages` (a search answer spans
    /// several), each for exactly their seqs.
    pub async fn attach(r: &mut impl Reads, viewer: Option<&str>, messages: &mut [Message]) -> sqlx::Result<()> {
        let mut conversations: Vec<String> = messages.iter().map(|m| m.conversation_id.clone()).collect();
        conversations.sort_unstable();
        conversations.dedup();
        for conversation in conversations {
            let seqs: Vec<i64> = messages.iter().filter(|m| m.conversation_id == conversation).map(|m| m.seq).collect();
            let mut reactions = Store::reactions(r, &conversation, &seqs, viewer).await?;
            let threads = Store::threads(r, &conversation, &seqs).await?;
            for m in messages.iter_mut().filter(|m| m.conversation_id == conversation) {
                m.reactions = reactions.remove(&m.seq).unwrap_or_default();
                m.thread = threads.get(&m.seq).copied();
            }
        }
        Ok(())
    }

    /// Who took part in a thread: the root's sender and every replier.
    pub async fn thread_participants(
        r: &mut impl Reads,
        conversation_id: &str,
        root: i64,
    ) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = r
            .fetch_all(
                // Two index probes; one statement with `seq = ? OR thread_root = ?` read the
                // whole conversation on SQLite.
                sqlx::query_as(
                    "SELECT sender_id FROM messages WHERE conversation_id = ? AND seq = ? \
                     UNION SELECT sender_id FROM messages WHERE conversation_id = ? AND thread_root = ?",
                )
                .bind(conversation_id)
                .bind(root)
                .bind(conversation_id)
                .bind(root),
            )
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The thread summaries of those of `seqs` that are roots (deleted replies not counted).
    async fn threads(
        r: &mut impl Reads,
        conversation_id: &str,
        seqs: &[i64],
    ) -> sqlx::Result<HashMap<i64, ThreadSummary>> {
        let mut q = QueryBuilder::<Any>::new(
            "SELECT thread_root, COUNT(*), MAX(created_at_ms) FROM messages WHERE conversation_id = ",
        );
        q.push_bind(conversation_id.to_owned()).push(" AND deleted = 0 AND thread_root IN ");
        push_in_list(&mut q, seqs);
        q.push(" GROUP BY thread_root");
        let rows: Vec<(i64, i64, i64)> = r.fetch_all(q.build_query_as()).await?;
        Ok(rows
            .into_iter()
            .map(|(root, n, at)| (root, ThreadSummary { reply_count: n as u32, last_reply_at_ms: at }))
            .collect())
    }
}

/// The stored form of a message's mentions: `NULL` for none.
pub(super) fn mentions_json(mention_ids: &[String]) -> Option<String> {
    (!mention_ids.is_empty()).then(|| serde_json::to_string(mention_ids).unwrap_or_default())
}
