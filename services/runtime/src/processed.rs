//! Forgetting processed events: [`crate::consumer`] records every event id it applied in
//! `processed_events`, and a pruner per service database deletes the ids older than the
//! [`Horizon`], a batch at a time.
//!
//! An id may go once no copy of its event can reach a consumer again. Every copy a consumer is
//! given (a first delivery, a redelivery after `ack_wait`, however many times, a re-publication
//! past the duplicate window) is a message still in its stream, and a stream drops a message
//! once it is `max_age` old, pending or not. An id is recorded after its message was published,
//! so an id younger than the longest `max_age` of the consumed streams (plus a margin for the
//! clocks of the NATS server and the worker) still answers every copy that can come. That is the
//! floor. Capping `max_deliver` or refusing old messages by their timestamp would allow a shorter
//! horizon, but would drop an event that a consumer stopped for a while never applied.

use std::str::FromStr;
use std::time::Duration;

use soulchat_subjects::metrics;
use soulchat_subjects::streams::{self, CHAT_STREAM, EVENTS_STREAM};
use soulchat_subjects::time::now_ms;
use tokio_util::sync::CancellationToken;

use crate::database::{Database, Reads};
use crate::pruner;

/// The streams [`crate::consumer`] reads; [`crate::Context::consume`] refuses any other, whose
/// `max_age` the floor does not know.
pub(crate) const CONSUMED_STREAMS: [&str; 2] = [EVENTS_STREAM, CHAT_STREAM];
/// How far the NATS server's clock (publish times) and a worker's (`processed_at_ms`) may
/// disagree.
const CLOCK_MARGIN: Duration = Duration::from_secs(3600);
/// Ids per delete: each batch is a short transaction of its own, so writers wait at most one.
const BATCH: usize = 1000;
/// How often the pruner looks for old ids.
const EVERY: Duration = Duration::from_secs(600);

/// How long a processed event's id is kept (`SOULCHAT_PROCESSED_EVENTS_RETENTION`): never less
/// than [`Horizon::floor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon(Duration);

impl Horizon {
    /// The shortest safe horizon: the longest `max_age` of the consumed streams, plus
    /// [`CLOCK_MARGIN`].
    pub fn floor() -> Duration {
        let longest = streams::stream_configs()
            .into_iter()
            .filter(|s| CONSUMED_STREAMS.contains(&s.name.as_str()))
            .map(|s| s.max_age)
            .max()
            .unwrap_or_default();
        longest + CLOCK_MARGIN
    }

    pub fn new(keep: Duration) -> anyhow::Result<Horizon> {
        let floor = Self::floor();
        anyhow::ensure!(
            keep >= floor,
            "a processed-events retention of {} is below the safe minimum of {}: a redelivered event \
             (streams keep events up to {} old) would no longer be recognised and would be applied twice",
            humantime::format_duration(keep),
            humantime::format_duration(floor),
            humantime::format_duration(floor - CLOCK_MARGIN),
        );
        Ok(Horizon(keep))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

/// A day beyond the floor.
impl Default for Horizon {
    fn default() -> Self {
        Horizon(Self::floor() - CLOCK_MARGIN + Duration::from_secs(24 * 3600))
    }
}

impl FromStr for Horizon {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Horizon> {
        Horizon::new(humantime::parse_duration(s)?)
    }
}

/// Prunes `service`'s `processed_events` now and then every [`EVERY`], until `shutdown`.
pub(crate) fn spawn_pruner(
    service: &'static str,
    db: Database,
    horizon: Horizon,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    pruner::spawn("processed events", EVERY, shutdown, move || prune_batch(service, db.clone(), horizon))
}

/// Deletes up to [`BATCH`] ids recorded before `now - horizon`; whether more may be left.
async fn prune_batch(service: &'static str, db: Database, horizon: Horizon) -> anyhow::Result<bool> {
    let cutoff = now_ms() - i64::try_from(horizon.get().as_millis())?;
    // Chosen on a read connection and deleted by key: a portable bounded delete (SQLite has no
    // DELETE … LIMIT, MySQL no LIMIT in an IN subquery), with the index on `processed_at_ms`
    // making the choice cheap.
    let old: Vec<(String,)> = db
        .reads()
        .await?
        .fetch_all(
            sqlx::query_as("SELECT event_id FROM processed_events WHERE processed_at_ms < ? LIMIT ?")
                .bind(cutoff)
                .bind(BATCH as i64),
        )
        .await?;
    if old.is_empty() {
        return Ok(false);
    }
    let mut delete = sqlx::QueryBuilder::<sqlx::Any>::new("DELETE FROM processed_events WHERE event_id IN (");
    let mut list = delete.separated(", ");
    for (id,) in &old {
        list.push_bind(id.clone());
    }
    delete.push(")");
    let mut tx = db.begin().await?;
    let gone = delete.build().execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    metrics::processed_events_pruned(service, gone);
    tracing::debug!(service, gone, "pruned processed events");
    Ok(old.len() == BATCH)
}
