//! The transactional outbox of domain events: an event is written to the service's `outbox`
//! table in the same transaction as the change it describes, and the [`relay`](crate::relay)
//! publishes it afterwards with `Nats-Msg-Id = <domain>:<outbox id>` and the `traceparent` of
//! the span that recorded it.

use async_nats::jetstream::message::PublishMessage;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{Event, headers, trace, wire};
use sqlx::Row;

use crate::database::{Database, Reads, WriteTx};
use crate::relay::{Pending, Relay, Source};

/// Records domain events; a clone is as good as the original.
#[derive(Clone)]
pub struct Outbox {
    relay: Relay,
}

impl Outbox {
    pub(crate) fn new(relay: Relay) -> Self {
        Outbox { relay }
    }

    /// Records `event` in the caller's transaction, with the current span's trace context so
    /// that its consumers join the trace; its commit wakes the relay.
    pub async fn record<E: Event>(&self, tx: &mut WriteTx<'_>, payload: &E::Payload) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO outbox (subject, payload, created_at_ms, traceparent) VALUES (?, ?, ?, ?)")
            .bind(E::SUBJECT)
            .bind(prost::Message::encode_to_vec(payload))
            .bind(now_ms())
            .bind(trace::current())
            .execute(&mut **tx)
            .await?;
        self.relay.wake_after_commit(tx);
        Ok(())
    }
}

/// The `outbox` table of one service, whose domain names its message ids.
pub(crate) struct OutboxTable {
    pub domain: &'static str,
}

impl Source for OutboxTable {
    const TABLE: &'static str = "outbox";

    async fn pending(&self, db: &Database, after: i64, limit: usize) -> anyhow::Result<Vec<Pending>> {
        let rows = db
            .reads()
            .await?
            .fetch_all(
                sqlx::query("SELECT id, subject, payload, traceparent FROM outbox WHERE id > ? ORDER BY id LIMIT ?")
                    .bind(after)
                    .bind(limit as i64),
            )
            .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let subject: String = row.try_get("subject")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            let traceparent: Option<String> = row.try_get("traceparent")?;
            let mut message = PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{}:{id}", self.domain))
                .header(headers::CONTENT_TYPE, wire::PROTOBUF);
            if let Some(traceparent) = traceparent {
                message = message.header(headers::TRACEPARENT, traceparent.as_str());
            }
            pending.push(Pending { id, publish: Some((subject, message)) });
        }
        Ok(pending)
    }
}
