//! Bounded storage: the event log keeps what resume can still be asked for, the events of the
//! retention period (`--chat-event-retention`), and deletes older ones in the background. A
//! client that missed more than that is told by resume (`truncated`) and reads history, which
//! keeps every message. Nothing the relay has yet to publish is deleted.
//!
//! Deletes go [`CHUNK`] events per transaction, oldest first by position, with a pause between
//! them, so that the writers (on SQLite, everyone waiting for the write lock) get their turns.

use std::time::Duration;

use soulchat_subjects::metrics;
use soulchat_subjects::time::now_ms;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How long events stay in the log unless configured: the `SOULCHAT_CHAT` stream's age too.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the oldest events are looked at.
const EVERY: Duration = Duration::from_secs(10);
/// Events per deleting transaction at most.
const CHUNK: i64 = 1000;
/// The writers' turn between two deleting transactions.
const PAUSE: Duration = Duration::from_millis(20);

/// Prunes until `stop`.
pub async fn run(store: Store, retention: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = prune(&store, retention, &stop).await {
            tracing::warn!("pruning the event log: {e:#}");
        }
    }
}

/// Deletes every event older than `retention` that is on the stream, a chunk at a time.
async fn prune(store: &Store, retention: Duration, stop: &CancellationToken) -> anyhow::Result<()> {
    let before_ms = now_ms() - retention.as_millis() as i64;
    loop {
        let relayed = Store::relayed(&mut store.db().reads().await?).await?;
        let mut tx = store.db().begin().await?;
        let pruned = Store::prune_events(&mut tx, before_ms, relayed, CHUNK).await?;
        tx.commit().await?;
        metrics::chat_events_pruned(pruned);
        if pruned < CHUNK as u64 {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(PAUSE) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}
