//! Bounded storage: the event log keeps what resume can still be asked for, the events of the
//! retention period (`--chat-event-retention`), and deletes older ones in the background. A
//! client that missed more than that is told by resume (`truncated`) and reads history, which
//! keeps every message. Nothing the relay has yet to publish is deleted.
//!
//! Deletes go [`CHUNK`] events per transaction, oldest first by position, through the runtime's
//! [`pruner`], which lets the writers take their turns between them.

use std::time::Duration;

use soulchat_runtime::pruner;
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

/// Prunes now and then every [`EVERY`], until `stop`.
pub fn spawn(store: Store, retention: Duration, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    pruner::spawn("the chat event log", EVERY, stop, move || prune_batch(store.clone(), retention))
}

/// Deletes up to [`CHUNK`] events older than `retention` that are on the stream; whether more
/// may be left.
async fn prune_batch(store: Store, retention: Duration) -> anyhow::Result<bool> {
    let before_ms = now_ms() - retention.as_millis() as i64;
    let relayed = Store::relayed(&mut store.db().reads().await?).await?;
    let mut tx = store.db().begin().await?;
    let pruned = Store::prune_events(&mut tx, before_ms, relayed, CHUNK).await?;
    tx.commit().await?;
    metrics::chat_events_pruned(pruned);
    Ok(pruned == CHUNK as u64)
}
