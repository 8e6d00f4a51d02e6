//! Durable, at-least-once consumption of events with exactly-once effects: each event's id
//! (`Nats-Msg-Id`) is recorded in `processed_events` in the same transaction as the handler's
//! changes, so a redelivered event finds its id and changes nothing.
//!
//! A handler may first `prepare` what it needs from elsewhere (other workers, NATS look-ups)
//! outside the transaction, so no remote call ever holds the database's write lock.
//!
//! Events are taken in batches of what has arrived (up to [`BATCH`]): one look-up of the ids
//! already processed and one transaction per batch, as the chat committer does for sends,
//! because a transaction per event costs an fsync per event on SQLite and a busy stream (every
//! chat message) would outrun it. An event whose preparation finds nothing to change is acked
//! without a transaction. If a batch's transaction fails, each of its events is retried alone,
//! so that one bad event cannot hold up the others.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use soulchat_subjects::metrics;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{Consumer, Event, headers, trace};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::database::{Database, Reads, WriteTx};

/// Events per transaction at most.
const BATCH: usize = 256;
/// How often a consumer's pending and redelivered counts are asked of the server.
const WATCH_EVERY: Duration = Duration::from_secs(10);

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
        tx: &mut WriteTx<'_>,
        event: E::Payload,
        prepared: Self::Prepared,
    ) -> impl Future<Output = anyhow::Result<Self::Effect>> + Send;

    /// Whether `prepared` changes nothing, so that the event needs no transaction (nor a record:
    /// a redelivery prepares it again).
    fn changes_nothing(_prepared: &Self::Prepared) -> bool {
        false
    }

    /// Runs after the transaction committed; not again on redelivery.
    fn committed(&self, _effect: Self::Effect) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Consumes `E` from its stream as `consumer` until `shutdown`.
pub(crate) fn spawn<E: Event, H: EventHandler<E>>(
    js: jetstream::Context,
    db: Database,
    consumer: Consumer<E>,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let durable = consumer.durable;
    tokio::spawn(async move {
        let watch = tokio::spawn(watch(js.clone(), E::STREAM, durable, shutdown.clone()));
        loop {
            if let Err(e) = consume::<E, H>(&js, &db, durable, &handler, &shutdown).await {
                tracing::warn!(durable, "event consumer stopped: {e:#}; restarting");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let _ = watch.await;
    })
}

/// Reports a durable consumer's pending and redelivered events, as the server counts them,
/// until `shutdown`: for every consumer of [`spawn`], and for consumers a service runs itself.
pub async fn watch(js: jetstream::Context, stream: &'static str, durable: &'static str, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let info = async { js.get_stream(stream).await?.consumer_info(durable).await.map_err(anyhow::Error::from) };
        match info.await {
            Ok(info) => metrics::consumer_state(durable, info.num_pending, info.num_ack_pending, info.num_redelivered),
            Err(e) => tracing::debug!(durable, "consumer info: {e:#}"),
        }
    }
}

async fn consume<E: Event, H: EventHandler<E>>(
    js: &jetstream::Context,
    db: &Database,
    durable: &str,
    handler: &H,
    shutdown: &CancellationToken,
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
    let mut batches = consumer.messages().await?.ready_chunks(BATCH);
    // Shutdown is heard between batches only: a batch dropped halfway would leave its
    // transaction to be rolled back whenever its connection comes back, and on MySQL another
    // of this worker's transactions may wait on its locks meanwhile.
    loop {
        let batch = tokio::select! {
            batch = batches.next() => batch,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(batch) = batch else { break };
        let mut received = Vec::with_capacity(batch.len());
        let mut broken = None;
        for message in batch {
            match message {
                Ok(message) => received.push(message),
                Err(e) => broken = Some(e),
            }
        }
        apply_batch::<E, H>(db, durable, handler, received).await?;
        if let Some(e) = broken {
            return Err(e.into());
        }
    }
    Ok(())
}

/// An event taken from the stream, decoded, with the span its handling runs in.
struct Received<P> {
    message: jetstream::Message,
    id: String,
    event: P,
    span: tracing::Span,
}

/// The span of handling one event: a child of the span that recorded it (its `traceparent`), so
/// a reaction is part of the trace of the request that caused it.
fn event_span<E: Event>(durable: &str, id: &str, message: &jetstream::Message) -> tracing::Span {
    let span = tracing::info_span!(
        "event",
        otel.name = E::SUBJECT,
        otel.kind = "consumer",
        durable,
        event_id = id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    trace::follow(&span, message.headers.as_ref());
    span
}

fn event_id<E: Event>(message: &jetstream::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::MSG_ID))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| format!("{}:{}", E::STREAM, message.info().map_or(0, |i| i.stream_sequence)))
}

async fn apply_batch<E: Event, H: EventHandler<E>>(
    db: &Database,
    durable: &str,
    handler: &H,
    messages: Vec<jetstream::Message>,
) -> anyhow::Result<()> {
    let mut received = Vec::with_capacity(messages.len());
    for message in messages {
        let id = event_id::<E>(&message);
        let span = event_span::<E>(durable, &id, &message);
        match <E::Payload as prost::Message>::decode(message.payload.as_ref()) {
            Ok(event) => received.push(Received { message, id, event, span }),
            Err(e) => {
                // Retrying cannot help a message that does not decode; keep it out of the way.
                span.in_scope(|| tracing::error!(%id, subject = E::SUBJECT, "undecodable event dropped: {e}"));
                ack(&message).await?;
            }
        }
    }
    let seen = processed_among(db, received.iter().map(|r| r.id.as_str())).await?;
    let prepared = futures::future::join_all(received.iter().map(|r| async {
        if seen.contains(&r.id) { None } else { Some(handler.prepare(&r.event).instrument(r.span.clone()).await) }
    }))
    .await;
    let mut work = Vec::with_capacity(received.len());
    for (r, prepared) in received.into_iter().zip(prepared) {
        match prepared {
            None => ack(&r.message).await?,
            Some(Ok(prepared)) if H::changes_nothing(&prepared) => ack(&r.message).await?,
            Some(Ok(prepared)) => work.push((r, prepared)),
            Some(Err(e)) => retry_later::<E>(&r.message, &r.id, e).instrument(r.span).await?,
        }
    }
    if work.is_empty() {
        return Ok(());
    }
    let mut taken = Vec::with_capacity(work.len());
    let (mut events, mut prepared) = (Vec::with_capacity(work.len()), Vec::with_capacity(work.len()));
    for (r, p) in work {
        taken.push((r.message, r.id, r.span.clone()));
        events.push((r.event, r.span));
        prepared.push(p);
    }
    let ids: Vec<&str> = taken.iter().map(|(_, id, _)| id.as_str()).collect();
    match commit_batch::<E, H>(db, handler, &ids, events, prepared).await {
        Ok(effects) => {
            for (effect, span) in effects {
                handler.committed(effect).instrument(span).await;
            }
            for (message, _, _) in &taken {
                ack(message).await?;
            }
        }
        Err(e) => {
            tracing::warn!(events = taken.len(), "batch of events failed, applying each alone: {e:#}");
            for (message, id, span) in &taken {
                match apply::<E, H>(db, handler, id, &message.payload).instrument(span.clone()).await {
                    Ok(()) => ack(message).await?,
                    Err(e) => retry_later::<E>(message, id, e).instrument(span.clone()).await?,
                }
            }
        }
    }
    Ok(())
}

/// Records the batch's ids and applies its events (each in its span) in one transaction.
async fn commit_batch<E: Event, H: EventHandler<E>>(
    db: &Database,
    handler: &H,
    ids: &[&str],
    events: Vec<(E::Payload, tracing::Span)>,
    prepared: Vec<H::Prepared>,
) -> anyhow::Result<Vec<(H::Effect, tracing::Span)>> {
    let mut tx = db.begin().await?;
    let mut insert = sqlx::QueryBuilder::<sqlx::Any>::new("INSERT INTO processed_events (event_id, processed_at_ms) ");
    let at = now_ms();
    insert.push_values(ids, |mut row, id| {
        row.push_bind(id.to_string()).push_bind(at);
    });
    insert.build().execute(&mut *tx).await?;
    let mut effects = Vec::with_capacity(events.len());
    for ((event, span), prepared) in events.into_iter().zip(prepared) {
        let effect = handler.handle(&mut tx, event, prepared).instrument(span.clone()).await?;
        effects.push((effect, span));
    }
    tx.commit().await?;
    Ok(effects)
}

/// The ids among `ids` that were processed already.
async fn processed_among<'a>(
    db: &Database,
    ids: impl Iterator<Item = &'a str>,
) -> sqlx::Result<std::collections::HashSet<String>> {
    let ids: Vec<&str> = ids.collect();
    let mut seen = std::collections::HashSet::new();
    for chunk in ids.chunks(128) {
        let chunk: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
        let mut query =
            sqlx::QueryBuilder::<sqlx::Any>::new("SELECT event_id FROM processed_events WHERE event_id IN ");
        crate::database::push_in_list(&mut query, &chunk);
        let rows: Vec<(String,)> = db.reads().await?.fetch_all(query.build_query_as()).await?;
        seen.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(seen)
}

async fn ack(message: &jetstream::Message) -> anyhow::Result<()> {
    message.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))
}

async fn retry_later<E: Event>(message: &jetstream::Message, id: &str, e: anyhow::Error) -> anyhow::Result<()> {
    tracing::warn!(%id, subject = E::SUBJECT, "handling event failed, will retry: {e:#}");
    message.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await.map_err(|e| anyhow::anyhow!("nak: {e}"))
}

/// One event in its own transaction (after its batch failed).
async fn apply<E: Event, H: EventHandler<E>>(
    db: &Database,
    handler: &H,
    id: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let event = <E::Payload as prost::Message>::decode(payload)?;
    let seen: Option<(String,)> = db
        .reads()
        .await?
        .fetch_optional(sqlx::query_as("SELECT event_id FROM processed_events WHERE event_id = ?").bind(id))
        .await?;
    if seen.is_some() {
        return Ok(());
    }
    let prepared = handler.prepare(&event).await?;
    if H::changes_nothing(&prepared) {
        return Ok(());
    }
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
