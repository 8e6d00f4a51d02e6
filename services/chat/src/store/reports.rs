//! Reports of messages, open until an administrator resolves them.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::Report;
use sqlx::FromRow;

use super::{Store, sql};

#[derive(Debug, Clone, FromRow)]
pub struct ReportRow {
    pub position: i64,
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub reporter_id: String,
    pub author_id: String,
    pub reason: String,
    pub status: String,
    pub created_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
}

impl ReportRow {
    /// The report without its message (the caller adds it).
    pub fn to_proto(&self) -> Report {
        Report {
            id: self.id.clone(),
            conversation_id: self.conversation_id.clone(),
            seq: self.seq,
            reporter_id: self.reporter_id.clone(),
            author_id: self.author_id.clone(),
            reason: self.reason.clone(),
            status: self.status.clone(),
            created_at_ms: self.created_at_ms,
            resolved_at_ms: self.resolved_at_ms,
            resolved_by: self.resolved_by.clone().unwrap_or_default(),
            message: None,
        }
    }
}

const REPORT: &str = "SELECT position, id, conversation_id, seq, reporter_id, author_id, reason, status, \
     created_at_ms, resolved_at_ms, resolved_by FROM reports";

pub const OPEN: &str = "open";

impl Store {
    /// Stores an open report; a second report of a message by the same member is a unique-key
    /// violation.
    pub async fn insert_report(tx: &mut WriteTx<'_>, r: &ReportRow) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO reports (id, conversation_id, seq, reporter_id, author_id, reason, status, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.conversation_id)
        .bind(r.seq)
        .bind(&r.reporter_id)
        .bind(&r.author_id)
        .bind(&r.reason)
        .bind(OPEN)
        .bind(r.created_at_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn report(r: &mut impl Reads, id: &str) -> sqlx::Result<Option<ReportRow>> {
        r.fetch_optional(sqlx::query_as(sql(&[REPORT, " WHERE id = ?"])).bind(id)).await
    }

    /// Open reports after `after` (a position), oldest first, `limit` at most.
    pub async fn open_reports(r: &mut impl Reads, after: i64, limit: i64) -> sqlx::Result<Vec<ReportRow>> {
        r.fetch_all(
            sqlx::query_as(sql(&[REPORT, " WHERE status = ? AND position > ? ORDER BY position LIMIT ?"]))
                .bind(OPEN)
                .bind(after)
                .bind(limit),
        )
        .await
    }

    /// Resolves every open report of a message as `status`; false when none was open.
    pub async fn resolve_reports(
        tx: &mut WriteTx<'_>,
        conversation_id: &str,
        seq: i64,
        status: &str,
        at_ms: i64,
        by: &str,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE reports SET status = ?, resolved_at_ms = ?, resolved_by = ? \
             WHERE conversation_id = ? AND seq = ? AND status = ?",
        )
        .bind(status)
        .bind(at_ms)
        .bind(by)
        .bind(conversation_id)
        .bind(seq)
        .bind(OPEN)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
