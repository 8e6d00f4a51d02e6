//! The transactional outbox: a domain event is written to the `outbox` table in the same
//! transaction as the change it describes, and a relay publishes it to JetStream afterwards with
//! `Nats-Msg-Id = <service>:<outbox id>`. A crash between commit and publish loses nothing (the
//! row is still there), and publishing twice (a crash between publish and delete, or two
//! replicas relaying at once) is absorbed by the stream's de-duplication window.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use soulchat_subjects::{Event, headers, wire};
use sqlx::{Any, AnyConnection, QueryBuilder, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Database, now_ms};

const BATCH: i64 = 256;
/// How often the relay looks for rows written by another replica (this one wakes at once).
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Outbox {
    service: &'static str,
    wake: Arc<Notify>,
}

impl Outbox {
    /// `service` prefixes every message id: `user`, `profile`, ...
    pub fn new(service: &'static str) -> Self {
        Outbox { service, wake: Arc::new(Notify::new()) }
    }

    /// Records `event` in the caller's transaction. Call [`Outbox::wake`] after the commit.
    pub async fn record<E: Event>(&self, conn: &mut AnyConnection, payload: &E::Payload) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO outbox (subject, payload, created_at_ms) VALUES (?, ?, ?)")
            .bind(E::SUBJECT)
            .bind(prost::Message::encode_to_vec(payload))
            .bind(now_ms())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Tells the relay that committed rows are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Relays until `shutdown`, then makes one last pass so committed events leave promptly.
    pub fn spawn_relay(
        &self,
        db: Database,
        js: jetstream::Context,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match outbox.relay_batch(&db, &js).await {
                    Ok(n) => {
                        failures = 0;
                        if n == BATCH as usize {
                            continue;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(service = outbox.service, "outbox relay: {e:#}");
                    }
                }
                let wait = if failures == 0 { POLL } else { POLL * 2u32.saturating_pow(failures.min(4)) };
                tokio::select! {
                    _ = outbox.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {
                        if let Err(e) = outbox.relay_batch(&db, &js).await {
                            tracing::warn!(service = outbox.service, "outbox relay at shutdown: {e:#}");
                        }
                        return;
                    }
                }
            }
        })
    }

    /// Publishes up to one batch, pipelined, and deletes the rows JetStream acknowledged.
    async fn relay_batch(&self, db: &Database, js: &jetstream::Context) -> anyhow::Result<usize> {
        let rows = sqlx::query("SELECT id, subject, payload FROM outbox ORDER BY id LIMIT ?")
            .bind(BATCH)
            .fetch_all(db.pool())
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let subject: String = row.try_get("subject")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{}:{id}", self.service))
                .header(headers::CONTENT_TYPE, wire::PROTOBUF);
            pending.push((id, js.send_publish(subject, message).await?));
        }
        let mut done = Vec::with_capacity(pending.len());
        for (id, ack) in pending {
            ack.await?;
            done.push(id);
        }
        let mut delete = QueryBuilder::<Any>::new("DELETE FROM outbox WHERE id IN (");
        let mut ids = delete.separated(", ");
        for id in &done {
            ids.push_bind(*id);
        }
        let mut tx = db.begin().await?;
        delete.push(")").build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.len())
    }
}
