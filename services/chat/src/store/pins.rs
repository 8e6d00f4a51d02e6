//! Pinned messages: one row per pinned message, listed newest pin first.

use soulchat_runtime::{Reads, WriteTx};
use sqlx::FromRow;

use super::{MessageRow, Store};

#[derive(Debug, FromRow)]
pub struct PinRow {
    #[sqlx(flatten)]
    pub message: MessageRow,
    pub pinned_by: String,
    pub pinned_at_ms: i64,
}

impl Store {
    /// Who pinned the message and when, if it is pinned.
    pub async fn pin_of(r: &mut impl Reads, conversation_id: &str, seq: i64) -> sqlx::Result<Option<(String, i64)>> {
        r.fetch_optional(
            sqlx::query_as("SELECT pinned_by, pinned_at_ms FROM pins WHERE conversation_id = ? AND message_seq = ?")
                .bind(conversation_id)
                .bind(seq),
        )
        .await
    }

    pub async fn pin_count(r: &mut impl Reads, conversation_id: &str) -> sqlx::Result<i64> {
        let (n,): (i64,) = r
            .fetch_one(sqlx::query_as("SELECT COUNT(*) FROM pins WHERE conversation_id = ?").bind(conversation_id))
            .await?;
        Ok(n)
    }

    pub async fn pin(tx: &mut WriteTx<'_>, conversation_id: &str, seq: i64, by: &str, at_ms: i64) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO pins (conversation_id, message_seq, pinned_by, pinned_at_ms) VALUES (?, ?, ?, ?)")
            .bind(conversation_id)
            .bind(seq)
            .bind(by)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Whether it was pinned.
    pub async fn unpin(tx: &mut WriteTx<'_>, conversation_id: &str, seq: i64) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM pins WHERE conversation_id = ? AND message_seq = ?")
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The pinned messages, newest pin first.
    pub async fn pins(r: &mut impl Reads, conversation_id: &str) -> sqlx::Result<Vec<PinRow>> {
        r.fetch_all(
            sqlx::query_as(
                "SELECT m.conversation_id, m.seq, m.sender_id, m.client_id, m.kind, m.content, m.url, m.reply_to, \
                 m.created_at_ms, m.edited_at_ms, m.deleted, m.metadata, m.attachment_id, m.mention_ids, m.thread_root, \
                 p.pinned_by, p.pinned_at_ms \
                 FROM pins p JOIN messages m ON m.conversation_id = p.conversation_id AND m.seq = p.message_seq \
                 WHERE p.conversation_id = ? ORDER BY p.pinned_at_ms DESC, p.message_seq DESC",
            )
            .bind(conversation_id),
        )
        .await
    }
}
