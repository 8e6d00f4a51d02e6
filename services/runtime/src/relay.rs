//! Publishing what a service committed: every outbox (the services' `outbox` table, the chat
//! worker's `event_outbox`) is relayed to JetStream by this one loop.
//!
//! A transaction records an entry beside its change and, through [`Relay::wake_after_commit`],
//! wakes the relay when it commits; the relay also polls, for entries another replica wrote. It
//! publishes a batch pipelined (every `send_publish`, then the acks) with each entry's
//! `Nats-Msg-Id`, so a crash between commit and publish loses nothing and a double publish
//! (after a restart, or two replicas relaying) is absorbed by the stream's de-duplication
//! window.
//!
//! Acknowledged entries are deleted. On SQLite, where one writer at a time makes ids follow
//! commit order, the relay keeps a cursor and deletes at most once per [`PRUNE_EVERY`] in one
//! statement: under load every delete is another fsync contending for the single writer. On
//! MySQL a transaction may commit after one with a higher id, so there it reads from the start
//! and deletes exactly what it published.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use soulchat_subjects::metrics;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::database::{Backend, Database, WriteTx};
use crate::dedicated;

/// Entries per batch at most.
const BATCH: usize = 512;
/// How often the relay looks for entries written by another replica (this one wakes at once).
const POLL: Duration = Duration::from_secs(1);
/// How often acknowledged entries are deleted on SQLite.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// One entry of an outbox: its id and, unless there is nothing left to send for it, the subject
/// and message to publish.
pub struct Pending {
    pub id: i64,
    pub publish: Option<(String, PublishMessage)>,
}

/// An outbox table the relay reads and prunes.
pub trait Source: Send + Sync + 'static {
    /// The table, with an `id` column in insertion order; acknowledged rows are deleted from it.
    const TABLE: &'static str;

    /// Up to `limit` entries with an id above `after`, in id order.
    fn pending(
        &self,
        db: &Database,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = anyhow::Result<Vec<Pending>>> + Send;
}

/// Wakes a relay. A transaction that records an entry calls [`Relay::wake_after_commit`].
#[derive(Clone, Default)]
pub struct Relay {
    wake: Arc<Notify>,
}

impl Relay {
    /// Wakes the relay when `tx` commits.
    pub fn wake_after_commit(&self, tx: &mut WriteTx<'_>) {
        tx.wake_on_commit(&self.wake);
    }

    /// Relays `source` until `stop`, then drains what is committed and prunes. Runs on a thread
    /// of its own: every delivery of an event waits for it.
    pub fn spawn<S: Source>(
        &self,
        service: &'static str,
        name: &'static str,
        source: S,
        db: Database,
        js: jetstream::Context,
        stop: CancellationToken,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let wake = self.wake.clone();
        dedicated::spawn(name, async move {
            let mut progress = Progress { service, relay: name, ..Progress::default() };
            let mut failures = 0u32;
            loop {
                match relay_batch(&source, &db, &js, &mut progress).await {
                    Ok(n) => {
                        failures = 0;
                        if n == BATCH {
                            continue;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(table = S::TABLE, "relay: {e:#}");
                    }
                }
                let wait = if failures == 0 { POLL } else { POLL * 2u32.saturating_pow(failures.min(4)) };
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
            }
            loop {
                match relay_batch(&source, &db, &js, &mut progress).await {
                    Ok(n) if n == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(table = S::TABLE, "relay at shutdown: {e:#}");
                        break;
                    }
                }
            }
            if let Err(e) = prune::<S>(&db, &mut progress).await {
                tracing::warn!(table = S::TABLE, "relay pruning at shutdown: {e:#}");
            }
        })
    }
}

/// How far a relay got: entries up to `acknowledged` are on the stream, up to `pruned` deleted.
#[derive(Default)]
struct Progress {
    /// Whose relay this is, in the metrics.
    service: &'static str,
    relay: &'static str,
    acknowledged: i64,
    pruned: i64,
    last_prune: Option<tokio::time::Instant>,
}

/// Whether ids are in commit order (one writer at a time), so that a cursor is safe.
fn ordered(db: &Database) -> bool {
    db.backend() == Backend::Sqlite
}

/// Publishes up to one batch, and deletes what was acknowledged (at once, or when it is time).
async fn relay_batch<S: Source>(
    source: &S,
    db: &Database,
    js: &jetstream::Context,
    progress: &mut Progress,
) -> anyhow::Result<usize> {
    let entries = source.pending(db, if ordered(db) { progress.acknowledged } else { 0 }, BATCH).await?;
    metrics::relay_backlog(progress.service, progress.relay, entries.len());
    if entries.is_empty() {
        if progress.pruned < progress.acknowledged {
            prune::<S>(db, progress).await?;
        }
        return Ok(0);
    }
    let mut acks = Vec::with_capacity(entries.len());
    let mut done = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry.publish {
            Some((subject, message)) => acks.push((entry.id, js.send_publish(subject, message).await?)),
            None => done.push(entry.id),
        }
    }
    let published = acks.len();
    for (id, ack) in acks {
        ack.await?;
        done.push(id);
    }
    metrics::relay_published(progress.service, progress.relay, published);
    if !ordered(db) {
        let mut delete = sqlx::QueryBuilder::<sqlx::Any>::new(format!("DELETE FROM {} WHERE id IN (", S::TABLE));
        let mut ids = delete.separated(", ");
        for id in &done {
            ids.push_bind(*id);
        }
        let mut tx = db.begin().await?;
        delete.push(")").build().execute(&mut *tx).await?;
        tx.commit().await?;
        return Ok(done.len());
    }
    // Entries come in id order and each was acknowledged (or had nothing to send), so the
    // highest is how far the stream has everything.
    progress.acknowledged = done.iter().copied().max().unwrap_or(0).max(progress.acknowledged);
    if progress.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
        prune::<S>(db, progress).await?;
    }
    Ok(done.len())
}

/// Deletes every acknowledged entry in one statement (SQLite's cursor).
async fn prune<S: Source>(db: &Database, progress: &mut Progress) -> anyhow::Result<()> {
    if !ordered(db) || progress.pruned >= progress.acknowledged {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE id <= ?", S::TABLE)))
        .bind(progress.acknowledged)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    progress.pruned = progress.acknowledged;
    progress.last_prune = Some(tokio::time::Instant::now());
    Ok(())
}
