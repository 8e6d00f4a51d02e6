//! The per-conversation event log (what resume replays), its outbox (what the relay
//! publishes), and the seq counter both hang on.

use std::collections::HashMap;

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

    /// The last seq of each live conversation among `ids`, in one statement (locked on MySQL,
    /// like [`Store::next_seq`]).
    pub async fn lock_last_seqs(&self, conn: &mut AnyConnection, ids: &[&str]) -> sqlx::Result<HashMap<String, i64>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut q = QueryBuilder::<Any>::new("SELECT id, last_seq FROM conversations WHERE deleted = 0 AND id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        q.push(")");
        if self.db.backend() == Backend::MySql {
            q.push(" FOR UPDATE");
        }
        let rows: Vec<(String, i64)> = q.build_query_as().fetch_all(conn).await?;
        Ok(rows.into_iter().collect())
    }

    /// Sets several conversations' last seq (and activity time) in one statement.
    pub async fn set_last_seqs(conn: &mut AnyConnection, seqs: &[(&str, i64)]) -> sqlx::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::<Any>::new("UPDATE conversations SET last_seq = CASE id");
        for (id, seq) in seqs {
            q.push(" WHEN ").push_bind(id.to_string()).push(" THEN ").push_bind(*seq);
        }
        q.push(" ELSE last_seq END, last_activity_ms = ").push_bind(now_ms()).push(" WHERE id IN (");
        let mut list = q.separated(", ");
        for (id, _) in seqs {
            list.push_bind(id.to_string());
        }
        q.push(")");
        q.build().execute(conn).await?;
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
