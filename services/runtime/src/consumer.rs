//! Durable, at-least-once consumption of events with exactly-once effects: each event's id
//! (`Nats-Msg-Id`) is recorded in `processed_events` in the same transaction as the handler's
//! changes, so a redelivered event finds its id and changes nothing.
//!
//! A handler may first `prepare` what it needs from elsewhere (other workers, NATS look-ups)
//! outside the transaction, so no remote call ever holds the database's write lock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use soulchat_subjects::{Event, headers};
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use crate::{Database, now_ms};

/// Applies one kind of event inside the consumer's transaction.
pub trait EventHandler<E: Event>: Send + Sync + 'static {
    /// What [`EventHandler::prepare`] learns before the transaction.
    type Prepared: Send + Default;
    /// What `committed` needs to know (caches to refresh, frames to send, say).
    type Effect: Send;

    /// Whether a newly created consumer starts at the stream's next event rather than its first
    /// retained one (for reactions to live traffic, where old history should not act again).
    const FROM_NOW: bool = false;

    /// Look-ups outside the transaction; not called for an event already processed.
    fn prepare(&self, _event: &E::Payload) -> impl Future<Output = anyhow::Result<Self::Prepared>> + Send {
        async { Ok(Self::Prepared::default()) }
    }

    fn handle(
        &self,
        conn: &mut AnyConnection,
        event: E::Payload,
        prepared: Self::Prepared,
    ) -> impl Future<Output = anyhow::Result<Self::Effect>> + Send;

    /// Runs after the transaction committed; not again on redelivery.
    fn committed(&self, _effect: Self::Effect) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Consumes `E` from its stream under the durable name `durable` until `shutdown`.
pub fn spawn<E: Event, H: EventHandler<E>>(
    js: jetstream::Context,
    db: Database,
    durable: &'static str,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                result = consume::<E, H>(&js, &db, durable, &handler) => {
                    if let Err(e) = result {
                        tracing::warn!(durable, "event consumer stopped: {e:#}; restarting");
                    }
                }
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

async fn consume<E: Event, H: EventHandler<E>>(
    js: &jetstream::Context,
    db: &Database,
    durable: &str,
    handler: &H,
) -> anyhow::Result<()> {
    let stream = js.get_stream(E::STREAM).await?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: E::SUBJECT.to_owned(),
                deliver_policy: if H::FROM_NOW { DeliverPolicy::New } else { DeliverPolicy::All },
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::MSG_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_else(|| format!("{}:{}", E::STREAM, message.info().map_or(0, |i| i.stream_sequence)));
        match apply::<E, H>(db, handler, &id, &message.payload).await {
            Ok(()) => message.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?,
            Err(e) => {
                tracing::warn!(%id, subject = E::SUBJECT, "handling event failed, will retry: {e:#}");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await
                    .map_err(|e| anyhow::anyhow!("nak: {e}"))?;
            }
        }
    }
    Ok(())
}

async fn apply<E: Event, H: EventHandler<E>>(
    db: &Database,
    handler: &H,
    id: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let event = match <E::Payload as prost::Message>::decode(payload) {
        Ok(event) => event,
        Err(e) => {
            // Retrying cannot help a message that does not decode; keep it out of the way.
            tracing::error!(%id, subject = E::SUBJECT, "undecodable event dropped: {e}");
            return Ok(());
        }
    };
    let seen: Option<(String,)> = sqlx::query_as("SELECT event_id FROM processed_events WHERE event_id = ?")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    if seen.is_some() {
        return Ok(());
    }
    let prepared = handler.prepare(&event).await?;
    let mut tx = db.begin().await?;
    let first = sqlx::query("INSERT INTO processed_events (event_id, processed_at_ms) VALUES (?, ?)")
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
    match first {
        Err(e) if Database::is_unique_violation(&e) => return Ok(()), // another replica did it
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let effect = handler.handle(&mut tx, event, prepared).await?;
    tx.commit().await?;
    handler.committed(effect).await;
    Ok(())
}
