//! The per-conversation event log (what resume replays), its outbox (what the relay
//! publishes), and the seq counter both hang on.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::trace;
use sqlx::{Any, QueryBuilder};

use super::Store;
use super::sends::{push_insert_events, push_insert_outbox};

impl Store {
    /// Takes the conversation's next seq (and marks the activity). The `UPDATE` locks the
    /// conversation row until the commit, so concurrent writers queue instead of colliding.
    pub async fn next_seq(tx: &mut WriteTx<'_>, conversation_id: &str) -> sqlx::Result<i64> {
        sqlx::query("UPDATE conversations SET last_seq = last_seq + 1, last_activity_ms = ? WHERE id = ?")
            .bind(now_ms())
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT last_seq FROM conversations WHERE id = ?")
            .bind(conversation_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(seq)
    }

    /// Stores events in the log and queues them for the stream (with the current span's trace
    /// context), a batch per statement; the commit wakes the relay.
    pub async fn record(&self, tx: &mut WriteTx<'_>, events: &[ChatEvent]) -> sqlx::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut log = QueryBuilder::<Any>::new("");
        push_insert_events(&mut log, events);
        log.build().execute(&mut **tx).await?;
        let mut outbox = QueryBuilder::<Any>::new("");
        push_insert_outbox(&mut outbox, events, &vec![trace::current(); events.len()]);
        outbox.build().execute(&mut **tx).await?;
        self.relay.wake_after_commit(tx);
        Ok(())
    }

    /// Up to `limit` events after `after`, the newest ones, in seq order (encoded).
    pub async fn events_after(
        r: &mut impl Reads,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, Vec<u8>)>> {
        let query = sqlx::query_as(
            "SELECT seq, payload FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(conversation_id)
        .bind(after)
        .bind(limit);
        let mut rows: Vec<(i64, Vec<u8>)> = r.fetch_all(query).await?;
        rows.reverse();
        Ok(rows)
    }
}
