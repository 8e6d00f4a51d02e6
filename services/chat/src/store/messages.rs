//! Messages: stored by the group committer, edited and deleted in place, paged as history.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::Message;
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
            // Counted apart (`Store::attach_reactions`).
            reactions: Vec::new(),
            mention_ids: match (&self.mention_ids, deleted) {
                (Some(json), false) => serde_json::from_str(json).unwrap_or_default(),
                _ => Vec::new(),
            },
        }
    }
}

pub(super) const MESSAGE: &str = "SELECT conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
     created_at_ms, edited_at_ms, deleted, metadata, attachment_id, mention_ids FROM messages";

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
    /// ones unless `oldest_first`.
    pub async fn history(
        r: &mut impl Reads,
        conversation_id: &str,
        after: i64,
        before: i64,
        limit: i64,
        oldest_first: bool,
    ) -> sqlx::Result<Vec<MessageRow>> {
        let order = if oldest_first { " ORDER BY seq ASC LIMIT ?" } else { " ORDER BY seq DESC LIMIT ?" };
        let query = sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? AND seq > ? AND seq < ?", order]))
            .bind(conversation_id)
            .bind(after)
            .bind(before)
            .bind(limit);
        let mut rows: Vec<MessageRow> = r.fetch_all(query).await?;
        if !oldest_first {
            rows.reverse();
        }
        Ok(rows)
    }
}

/// The stored form of a message's mentions: `NULL` for none.
pub(super) fn mentions_json(mention_ids: &[String]) -> Option<String> {
    (!mention_ids.is_empty()).then(|| serde_json::to_string(mention_ids).unwrap_or_default())
}
