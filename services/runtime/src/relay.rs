//! Publishing what a service committed: every outbox (the services' `outbox` table, the chat
//! worker's event log) is relayed to JetStream by this one loop.
//!
//! A transaction records an entry beside its change and, through [`Relay::wake_after_commit`],
//! wakes the relay when it commits; the relay also polls, for entries another replica wrote. It
//! publishes a batch pipelined (every `send_publish`, then the acks) with each entry's
//! `Nats-Msg-Id`, so a crash between commit and publish loses nothing and a double publish
//! (after a restart, or two replicas relaying) is absorbed by the stream's de-duplication
//! window.
//!
//! Where a source's ids follow commit order ([`Source::ordered`]: one writer at a time on
//! SQLite, or a lock every recording transaction holds), the relay keeps a cursor and lets go of
//! what is behind it at most once per [`RELEASE_EVERY`], in one statement: under load every
//! such write is another commit contending with the writers. Otherwise a transaction may commit
//! after one with a higher id, so the relay reads from the start and releases exactly what it
//! published.

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
/// How often acknowledged entries are released behind a cursor.
const RELEASE_EVERY: Duration = Duration::from_secs(1);

/// One entry of an outbox: its id and, unless there is nothing left to send for it, the subject
/// and message to publish.
pub struct Pending {
    pub id: i64,
    pub publish: Option<(String, PublishMessage)>,
}

/// What a relay reads and publishes. By default an outbox table: its rows have an `id` in
/// insertion order and are deleted once on the stream.
pub trait Source: Send + Sync + 'static {
    /// The table, in log lines; by default the one acknowledged rows are deleted from.
    const TABLE: &'static str;

    /// Whether ids follow commit order, so that a cursor is safe: by default only where there is
    /// one writer at a time (SQLite).
    fn ordered(&self, db: &Database) -> bool {
        db.backend() == Backend::Sqlite
    }

    /// Where an ordered source's cursor starts: every entry up to it is on the stream.
    fn start(&self, _db: &Database) -> impl Future<Output = anyhow::Result<i64>> + Send {
        async { Ok(0) }
    }

    /// Up to `limit` entries with an id above `after`, in id order.
    fn pending(
        &self,
        db: &Database,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = anyhow::Result<Vec<Pending>>> + Send;

    /// Lets go of every entry up to `upto` (an ordered source's cursor).
    fn release_through(&self, db: &Database, upto: i64) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let mut tx = db.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE id <= ?", Self::TABLE)))
                .bind(upto)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
    }

    /// Lets go of exactly `ids` (an unordered source).
    fn release(&self, db: &Database, ids: &[i64]) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move {
            let mut delete = sqlx::QueryBuilder::<sqlx::Any>::new(format!("DELETE FROM {} WHERE id IN (", Self::TABLE));
            let mut list = delete.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            let mut tx = db.begin().await?;
            delete.push(")").build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }
    }
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

    /// Relays `source` until `stop`, then drains what is committed and releases it. Runs on a thread
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
            if source.ordered(&db) {
                // Without its start the relay cannot tell what is on the stream: retry until known.
                loop {
                    match source.start(&db).await {
                        Ok(start) => break progress.start_at(start),
                        Err(e) => tracing::warn!(table = S::TABLE, "relay start: {e:#}"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
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
            if let Err(e) = release(&source, &db, &mut progress).await {
                tracing::warn!(table = S::TABLE, "relay release at shutdown: {e:#}");
            }
        })
    }
}

/// How far a relay got: entries up to `acknowledged` are on the stream, up to `released` let go.
#[derive(Default)]
struct Progress {
    /// Whose relay this is, in the metrics.
    service: &'static str,
    relay: &'static str,
    acknowledged: i64,
    released: i64,
    last_release: Option<tokio::time::Instant>,
}

impl Progress {
    fn start_at(&mut self, cursor: i64) {
        self.acknowledged = cursor;
        self.released = cursor;
    }
}

/// Publishes up to one batch, and deletes what was acknowledged (at once, or when it is time).
async fn relay_batch<S: Source>(
    source: &S,
    db: &Database,
    js: &jetstream::Context,
    progress: &mut Progress,
) -> anyhow::Result<usize> {
    let ordered = source.ordered(db);
    let entries = source.pending(db, if ordered { progress.acknowledged } else { 0 }, BATCH).await?;
    metrics::relay_backlog(progress.service, progress.relay, entries.len());
    if entries.is_empty() {
        release(source, db, progress).await?;
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
    if !ordered {
        source.release(db, &done).await?;
        return Ok(done.len());
    }
    // Entries come in id order and each was acknowledged (or had nothing to send), so the
    // highest is how far the stream has everything.
    progress.acknowledged = done.iter().copied().max().unwrap_or(0).max(progress.acknowledged);
    if progress.last_release.is_none_or(|at| at.elapsed() >= RELEASE_EVERY) {
        release(source, db, progress).await?;
    }
    Ok(done.len())
}

/// Releases everything behind an ordered source's cursor, in one statement.
async fn release<S: Source>(source: &S, db: &Database, progress: &mut Progress) -> anyhow::Result<()> {
    if !source.ordered(db) || progress.released >= progress.acknowledged {
        return Ok(());
    }
    source.release_through(db, progress.acknowledged).await?;
    progress.released = progress.acknowledged;
    progress.last_release = Some(tokio::time::Instant::now());
    Ok(())
}
