//! The retry queue of external deliveries.
//!
//! Jobs live in JetStream, not in a table: `SOULCHAT_NOTIFICATION_DELIVERIES` is a work-queue
//! stream the outbox relay publishes to (so a job leaves exactly when the notification or the
//! account mail that decided it commits), and every replica pulls from one durable consumer
//! ([`notification::DELIVERIES`]). A failed attempt is NAKed with a delay of
//! `backoff · 2^(attempt-1)` (capped at an hour), and JetStream counts the attempts
//! (`delivered`); the server keeps the schedule, so a restart or a crashed replica loses nothing
//! and no replica polls a table. After the last attempt (or a failure no retry can fix) the job
//! goes, as proto3 JSON with the error and attempt count in headers, to
//! `SOULCHAT_NOTIFICATIONS_DLQ` and leaves the queue. Publishing it back to
//! `soulchat.notification.deliveries.<channel>` replays it with fresh attempts.
//!
//! Deliveries are at least once: a worker that dies between a successful send and its ack
//! sends again after `ack_wait` (an email carries the same Message-ID both times).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use soulchat_runtime::consumer;
use soulchat_subjects::notification::{self, messages::Delivery};
use soulchat_subjects::{Format, headers, metrics, streams, wire};
use tokio_util::sync::CancellationToken;

use crate::Notifications;
use crate::channels::{Channel, Failure};
use crate::stats::ChannelCounters;
use crate::store;

/// Attempts in flight per worker.
const CONCURRENCY: usize = 16;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How often and how patiently a delivery is tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

pub fn spawn(
    js: jetstream::Context,
    n: Arc<Notifications>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    metrics::zero::deliveries(&Channel::ALL.map(Channel::name));
    let durable = notification::DELIVERIES.durable;
    let watch = consumer::watch(js.clone(), streams::DELIVERIES_STREAM, durable, shutdown.clone());
    tokio::spawn(async move {
        let watch = tokio::spawn(watch);
        loop {
            tokio::select! {
                result = consume(&js, &n) => {
                    if let Err(e) = result {
                        tracing::warn!(durable, "delivery consumer stopped: {e:#}; restarting");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let _ = watch.await;
    })
}

async fn consume(js: &jetstream::Context, n: &Notifications) -> anyhow::Result<()> {
    let durable = notification::DELIVERIES.durable;
    let consumer = js
        .get_stream(streams::DELIVERIES_STREAM)
        .await?
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: streams::DELIVERIES_SUBJECTS.to_owned(),
                // Longer than one attempt may take (channels time out after ~25 s).
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 1000,
                ..Default::default()
            },
        )
        .await?;
    let messages = consumer.messages().await?;
    messages
        .for_each_concurrent(CONCURRENCY, |message| async move {
            match message {
                Ok(message) => attempt(js, n, message).await,
                Err(e) => tracing::warn!("delivery queue: {e}"),
            }
        })
        .await;
    Ok(())
}

/// One attempt at one job, and what becomes of the job.
async fn attempt(js: &jetstream::Context, n: &Notifications, message: jetstream::Message) {
    let attempt = message.info().map_or(1, |i| u32::try_from(i.delivered).unwrap_or(u32::MAX));
    let channel_name = message.subject.as_str().rsplit('.').next().unwrap_or_default().to_owned();
    let decoded: Result<Delivery, String> = Format::of(message.headers.as_ref()).decode(&message.payload);
    let outcome = match (&decoded, Channel::parse(&channel_name)) {
        (Err(reason), _) => Err(Failure::Permanent(format!("undecodable delivery: {reason}"))),
        (Ok(_), None) => Err(Failure::Permanent(format!("unknown channel {channel_name:?}"))),
        (Ok(delivery), Some(channel)) => n.channels.send(channel, delivery).await,
    };
    // A forbidden endpoint is dropped, and its delivery dead-lettered like any permanent failure.
    let outcome = match (outcome, &decoded) {
        (Err(Failure::Forbidden(error)), Ok(delivery)) => {
            unsubscribe(n, delivery, &error, &n.stats.push_forbidden).await;
            Err(Failure::Permanent(error))
        }
        (outcome, _) => outcome,
    };
    let known = Channel::parse(&channel_name);
    let count = |pick: fn(&ChannelCounters) -> &AtomicU64, outcome: metrics::Delivery| {
        metrics::notification_delivered(known.map_or("unknown", Channel::name), outcome);
        if let Some(channel) = known {
            pick(n.stats.channel(channel)).fetch_add(1, Ordering::Relaxed);
        }
    };
    let result = match outcome {
        Ok(()) => {
            count(|c| &c.sent, metrics::Delivery::Sent);
            message.ack().await
        }
        Err(Failure::Gone(status)) => {
            metrics::notification_delivered(known.map_or("unknown", Channel::name), metrics::Delivery::Gone);
            if let Ok(delivery) = &decoded {
                unsubscribe(n, delivery, &format!("gone (HTTP {status})"), &n.stats.push_gone).await;
            }
            message.ack().await
        }
        Err(Failure::Transient(error)) if attempt < n.retry.attempts => {
            let delay = n.retry.delay(attempt);
            tracing::info!(channel = %channel_name, attempt, ?delay, "delivery failed, will retry: {error}");
            count(|c| &c.retried, metrics::Delivery::Retried);
            message.ack_with(AckKind::Nak(Some(delay))).await
        }
        Err(Failure::Transient(error) | Failure::Permanent(error) | Failure::Forbidden(error)) => {
            match dead_letter(js, &message, &channel_name, decoded.as_ref().ok(), attempt, &error).await {
                Ok(()) => {
                    count(|c| &c.dead_lettered, metrics::Delivery::DeadLettered);
                    message.ack().await
                }
                Err(e) => {
                    tracing::error!(channel = %channel_name, "dead-lettering failed, will retry: {e:#}");
                    message.ack_with(AckKind::Nak(Some(n.retry.backoff))).await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(channel = %channel_name, "acknowledging a delivery: {e}");
    }
}

/// The push service no longer knows the subscription, or its endpoint is forbidden: it goes.
async fn unsubscribe(n: &Notifications, delivery: &Delivery, why: &str, counter: &AtomicU64) {
    let removed = async {
        let mut tx = n.db.begin().await?;
        store::unsubscribe(&mut tx, None, &delivery.to).await?;
        tx.commit().await
    };
    match removed.await {
        Ok(_) => {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(user_id = %delivery.user_id, "push subscription deleted: {why}");
        }
        Err(e) => tracing::warn!("deleting a push subscription ({why}): {e}"),
    }
}

/// Moves a job to the dead-letter stream: readable JSON when it decoded (so the operator can
/// read and replay it), the original bytes otherwise.
async fn dead_letter(
    js: &jetstream::Context,
    message: &jetstream::Message,
    channel: &str,
    delivery: Option<&Delivery>,
    attempts: u32,
    error: &str,
) -> anyhow::Result<()> {
    tracing::warn!(%channel, attempts, "delivery dead-lettered: {error}");
    let mut h = HeaderMap::new();
    let payload = match delivery {
        Some(delivery) => {
            h.insert(headers::CONTENT_TYPE, wire::JSON);
            Format::Json.encode(delivery)
        }
        None => {
            if let Some(original) = message.headers.as_ref().and_then(|o| o.get(headers::CONTENT_TYPE)) {
                h.insert(headers::CONTENT_TYPE, original.as_str());
            }
            message.payload.clone()
        }
    };
    h.insert(headers::DELIVERY_ATTEMPTS, attempts.to_string().as_str());
    // Header values are one line.
    let error: String = error.chars().map(|c| if c.is_control() { ' ' } else { c }).take(500).collect();
    h.insert(headers::DELIVERY_ERROR, error.as_str());
    let sequence = message.info().map_or(0, |i| i.stream_sequence);
    h.insert(headers::MSG_ID, format!("dead:{channel}:{sequence}").as_str());
    js.publish_with_headers(streams::dead_letter(channel), h, payload).await?.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let policy = RetryPolicy { attempts: 5, backoff: Duration::from_secs(10) };
        assert_eq!(policy.delay(1), Duration::from_secs(10));
        assert_eq!(policy.delay(3), Duration::from_secs(40));
        assert_eq!(policy.delay(40), MAX_BACKOFF);
    }
}
