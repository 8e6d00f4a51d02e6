//! Messages: stored by the group committer, edited and deleted in place, paged as history.

use soulchat_runtime::{Reads, WriteTx, push_in_list};
use std::collections::{BTreeMap, HashMap};

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

    /// Each conversation's last message (thread replies included): their seqs, then the
    /// messages, two statements that probe the (conversation, seq) key once per conversation.
    /// (One `UNION ALL` of per-conversation `LIMIT 1` subqueries took MariaDB 30 ms for 50: it
    /// materializes each one.)
    pub async fn last_messages(r: &mut impl Reads, conversation_ids: &[&str]) -> sqlx::Result<Vec<MessageRow>> {
        if conversation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Any>::new(
            "SELECT id, (SELECT seq FROM messages WHERE conversation_id = conversations.id ORDER BY seq DESC LIMIT 1) \
             FROM conversations WHERE id IN ",
        );
        let ids: Vec<String> = conversation_ids.iter().map(|id| id.to_string()).collect();
        push_in_list(&mut q, &ids);
        let lasts: Vec<(String, Option<i64>)> = r.fetch_all(q.build_query_as()).await?;
        let mut keys: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (conversation_id, seq) in &lasts {
            if let Some(seq) = seq {
                keys.entry(conversation_id.as_str()).or_default().push(*seq);
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Any>::new(MESSAGE);
        q.push(" WHERE ");
        push_message_keys(&mut q, "seq", &keys);
        r.fetch_all(q.build_query_as()).await
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
    /// thread summaries. Two statements whatever the messages (a page of history, a search answer
    /// across conversations, the last message of each listed conversation).
    pub async fn attach(r: &mut impl Reads, viewer: Option<&str>, messages: &mut [Message]) -> sqlx::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut keys: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for m in messages.iter() {
            keys.entry(m.conversation_id.as_str()).or_default().push(m.seq);
        }
        let mut reactions = Store::reactions(r, &keys, viewer).await?;
        let threads = Store::threads(r, &keys).await?;
        for m in messages.iter_mut() {
            let key = (m.conversation_id.clone(), m.seq);
            m.reactions = reactions.remove(&key).unwrap_or_default();
            m.thread = threads.get(&key).copied();
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
        keys: &BTreeMap<&str, Vec<i64>>,
    ) -> sqlx::Result<HashMap<(String, i64), ThreadSummary>> {
        let mut q = QueryBuilder::<Any>::new(
            "SELECT conversation_id, thread_root, COUNT(*), MAX(created_at_ms) FROM messages WHERE deleted = 0 AND (",
        );
        push_message_keys(&mut q, "thread_root", keys);
        q.push(") GROUP BY conversation_id, thread_root");
        let rows: Vec<(String, i64, i64, i64)> = r.fetch_all(q.build_query_as()).await?;
        Ok(rows
            .into_iter()
            .map(|(c, root, n, at)| ((c, root), ThreadSummary { reply_count: n as u32, last_reply_at_ms: at }))
            .collect())
    }
}

/// `(conversation_id = ? AND <seq_column> IN (…)) OR …`, a term per conversation: both backends
/// answer each term with index look-ups.
pub(super) fn push_message_keys(q: &mut QueryBuilder<Any>, seq_column: &str, keys: &BTreeMap<&str, Vec<i64>>) {
    for (i, (conversation_id, seqs)) in keys.iter().enumerate() {
        if i > 0 {
            q.push(" OR ");
        }
        q.push("(conversation_id = ").push_bind(conversation_id.to_string());
        q.push(format_args!(" AND {seq_column} IN "));
        push_in_list(q, seqs);
        q.push(")");
    }
}

/// The stored form of a message's mentions: `NULL` for none.
pub(super) fn mentions_json(mention_ids: &[String]) -> Option<String> {
    (!mention_ids.is_empty()).then(|| serde_json::to_string(mention_ids).unwrap_or_default())
}
