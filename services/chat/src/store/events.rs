//! The per-conversation event log (what resume replays), its outbox (what the relay
//! publishes), and the seq counter both hang on.

use prost::Message as _;
use soulchat_runtime::{Backend, now_ms};
use soulchat_subjects::chat::messages::ChatEvent;
use sqlx::{Any, AnyConnection, QueryBuilder};

use super::Store;

impl Store {
    /// Takes the conversation's next seq (and marks the activity). The `UPDATE` locks the
    /// conversation row until the commit, so concurrent writers queue instead of colliding.
    pub async fn next_seq(conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<i64> {
        sqlx::query("UPDATE conversations SET last_seq = last_seq + 1, last_activity_ms = ? WHERE id = ?")
            .bind(now_ms())
            .bind(conversation_id)
            .execute(&mut *conn)
            .await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT last_seq FROM conversations WHERE id = ?")
            .bind(conversation_id)
            .fetch_one(conn)
            .await?;
        Ok(seq)
    }

    /// The conversation's last seq, locked until the commit, for a writer that takes many
    /// seqs at once and stores the last with [`Store::set_last_seq`]. SQLite needs no row lock:
    /// the writer holds the database's write lock (see [`soulchat_runtime::Database::begin`]).
    pub async fn lock_last_seq(&self, conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<Option<i64>> {
        let query = match self.db.backend() {
            Backend::Sqlite => "SELECT last_seq FROM conversations WHERE id = ? AND deleted = 0",
            Backend::MySql => "SELECT last_seq FROM conversations WHERE id = ? AND deleted = 0 FOR UPDATE",
        };
        let row: Option<(i64,)> = sqlx::query_as(query).bind(conversation_id).fetch_optional(conn).await?;
        Ok(row.map(|(seq,)| seq))
    }

    pub async fn set_last_seq(conn: &mut AnyConnection, conversation_id: &str, last_seq: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET last_seq = ?, last_activity_ms = ? WHERE id = ?")
            .bind(last_seq)
            .bind(now_ms())
            .bind(conversation_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Stores events in the log and queues them for the stream, a batch per statement.
    pub async fn record(conn: &mut AnyConnection, events: &[ChatEvent]) -> sqlx::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut log = QueryBuilder::<Any>::new("INSERT INTO events (conversation_id, seq, payload) ");
        log.push_values(events, |mut row, e| {
            row.push_bind(e.conversation_id.clone()).push_bind(e.seq).push_bind(e.encode_to_vec());
        });
        log.build().execute(&mut *conn).await?;
        let mut outbox = QueryBuilder::<Any>::new("INSERT INTO event_outbox (conversation_id, seq) ");
        outbox.push_values(events, |mut row, e| {
            row.push_bind(e.conversation_id.clone()).push_bind(e.seq);
        });
        outbox.build().execute(conn).await?;
        Ok(())
    }

    /// Up to `limit` events after `after`, the newest ones, in seq order (encoded).
    pub async fn events_after(
        conn: &mut AnyConnection,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, Vec<u8>)>> {
        let mut rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, payload FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(conversation_id)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        rows.reverse();
        Ok(rows)
    }
}
