//! The per-conversation event log: what resume replays, and, by each event's `position`, the
//! relay's queue. Positions come from the one `event_log` row, which the recording transaction
//! updates and so holds until it commits (SQLite has one writer at a time anyway): positions
//! follow commit order, and the relay needs only a cursor.
//!
//! Lock order on MySQL: a transaction takes its conversations' rows (`next_seq`, or the
//! committer's `send_context`) before it records, so that it never waits for a conversation
//! while holding the log.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::time::now_ms;
use sqlx::{Any, QueryBuilder};

use super::{Store, reusable_chunks};

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

    /// Stores events in the log under the next positions, each with the trace context of the
    /// request that made it (`traceparents`, beside `events`); the commit wakes the relay.
    pub async fn record(
        &self,
        tx: &mut WriteTx<'_>,
        events: &[ChatEvent],
        traceparents: &[Option<String>],
    ) -> sqlx::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE event_log SET last_position = last_position + ? WHERE id = 1")
            .bind(events.len() as i64)
            .execute(&mut **tx)
            .await?;
        let (last,): (i64,) =
            sqlx::query_as("SELECT last_position FROM event_log WHERE id = 1").fetch_one(&mut **tx).await?;
        let at = now_ms();
        let rows: Vec<_> = events.iter().zip(traceparents).zip(last - events.len() as i64 + 1..).collect();
        for chunk in reusable_chunks(&rows) {
            let mut insert = QueryBuilder::<Any>::new(
                "INSERT INTO events (conversation_id, seq, payload, position, at_ms, traceparent) ",
            );
            insert.push_values(chunk, |mut row, ((e, traceparent), position)| {
                row.push_bind(e.conversation_id.clone())
                    .push_bind(e.seq)
                    .push_bind(prost::Message::encode_to_vec(*e))
                    .push_bind(*position)
                    .push_bind(at)
                    .push_bind((*traceparent).clone());
            });
            insert.build().execute(&mut **tx).await?;
        }
        self.relay.wake_after_commit(tx);
        Ok(())
    }

    /// Every event up to this position is on the stream.
    pub async fn relayed(r: &mut impl Reads) -> sqlx::Result<i64> {
        let (relayed,): (i64,) = r.fetch_one(sqlx::query_as("SELECT relayed FROM event_log WHERE id = 1")).await?;
        Ok(relayed)
    }

    pub async fn set_relayed(tx: &mut WriteTx<'_>, upto: i64) -> sqlx::Result<()> {
        // Never back: another replica's relay may be further.
        sqlx::query("UPDATE event_log SET relayed = ? WHERE id = 1 AND relayed < ?")
            .bind(upto)
            .bind(upto)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Deletes the oldest events recorded before `before_ms`, up to `limit` of them and none
    /// beyond `relayed` (the relay still needs those); how many went.
    pub async fn prune_events(tx: &mut WriteTx<'_>, before_ms: i64, relayed: i64, limit: i64) -> sqlx::Result<u64> {
        let oldest: Vec<(i64, i64)> = tx
            .fetch_all(
                sqlx::query_as(
                    "SELECT position, at_ms FROM events WHERE position IS NOT NULL AND position <= ? \
                     ORDER BY position LIMIT ?",
                )
                .bind(relayed)
                .bind(limit),
            )
            .await?;
        let Some(through) = oldest.iter().take_while(|(_, at)| *at < before_ms).map(|(p, _)| *p).last() else {
            return Ok(0);
        };
        let deleted = sqlx::query("DELETE FROM events WHERE position IS NOT NULL AND position <= ?")
            .bind(through)
            .execute(&mut **tx)
            .await?;
        Ok(deleted.rows_affected())
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
