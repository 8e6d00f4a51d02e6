//! The one way a worker starts and stops. A service describes itself ([`Service`]: its contract,
//! migrations, state, consumers and handlers) and [`run`] owns the order:
//!
//! 1. open the database and apply pending migrations;
//! 2. declare the shared streams and buckets (and the service's own, [`Service::declare`]);
//! 3. build the service ([`Service::start`]), which starts its consumers, relays and
//!    background work through the [`Context`] (the first consumer also starts the pruner of
//!    the ids of processed events, [`crate::processed`]);
//! 4. register its endpoints with the service API and serve;
//!
//! and, on shutdown, the reverse: the endpoints drain (every request received is answered),
//! consumers and background loops finish their batch, work that requests waited on is let go
//! ([`Context::drained`]), the relays publish what was committed, and the database closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use soulchat_subjects::{Caller, Consumer, Event, ServiceDef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::consumer::{self, EventHandler};
use crate::database::{Database, Migrations};
use crate::outbox::{Outbox, OutboxTable};
use crate::processed::{self, Horizon};
use crate::relay::{Relay, Source};
use crate::worker::Endpoints;

/// How long the relays get, at the end, to publish what was committed.
const RELAY_DRAIN: Duration = Duration::from_secs(5);
/// How long the database may take to answer a readiness check.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker: its contract and how to build and serve it.
pub trait Service: Send + Sync + Sized + 'static {
    /// The contract it serves (name, queue group, `health`).
    const CONTRACT: ServiceDef;
    /// What it needs beyond [`Common`].
    type Config: Send + 'static;

    fn migrations() -> &'static Migrations;

    /// Streams and buckets this service alone uses, declared beside the shared ones.
    fn declare(_js: &jetstream::Context) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Builds the state every handler shares, starting consumers and background work on `ctx`.
    fn start(config: Self::Config, ctx: &mut Context) -> impl Future<Output = anyhow::Result<Arc<Self>>> + Send;

    /// Registers a handler per operation.
    fn endpoints(endpoints: Endpoints<Self>) -> Endpoints<Self>;

    /// Extra figures in `$SRV.STATS` (`nats micro stats`), if any.
    fn stats(&self) -> Option<serde_json::Value> {
        None
    }
}

/// What every worker is given, whatever its domain.
#[derive(Debug, Clone)]
pub struct Common {
    pub client: async_nats::Client,
    /// Counts the client's reconnects: what a server restart lost is declared again after each.
    pub disruptions: soulchat_subjects::connect::Disruptions,
    pub database_url: String,
    /// Deadline of each call to another worker.
    pub request_timeout: Duration,
    /// Where the worker says whether it is ready (the admin listener's `/readyz`).
    pub readiness: Readiness,
    /// How long the ids of processed events are kept.
    pub processed_events_retention: Horizon,
}

/// What a service is built with, and where it leaves the work that must be stopped with it.
pub struct Context {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub db: Database,
    /// Calls other workers with the configured deadline.
    pub caller: Caller,
    def: ServiceDef,
    shutdown: CancellationToken,
    drained: CancellationToken,
    relays_stop: CancellationToken,
    /// Stop on `shutdown`.
    tasks: Vec<JoinHandle<()>>,
    /// Stop once `drained`.
    after_requests: Vec<JoinHandle<()>>,
    relays: Vec<JoinHandle<()>>,
    outbox: Option<Outbox>,
    /// Until the first consumer starts the pruner of `processed_events` (only a service that
    /// consumes has that table).
    unpruned: Option<Horizon>,
}

impl Context {
    /// Cancelled when the worker begins to stop: background loops end their round and return.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Cancelled once every request was answered: for work that requests wait on (a group
    /// committer), which must outlive them.
    pub fn drained(&self) -> CancellationToken {
        self.drained.clone()
    }

    /// A task that ends on its own once [`Context::shutdown`] is cancelled; awaited at the stop.
    pub fn spawn(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// A task that ends on its own once [`Context::drained`] is cancelled; awaited at the stop.
    pub fn spawn_until_drained(&mut self, task: JoinHandle<()>) {
        self.after_requests.push(task);
    }

    /// Consumes `E` as the contract's durable `consumer`, with exactly-once effects.
    pub fn consume<E: Event, H: EventHandler<E>>(&mut self, consumer: Consumer<E>, handler: Arc<H>) {
        assert!(
            processed::CONSUMED_STREAMS.contains(&E::STREAM),
            "{} is consumed from {}, whose age the processed-events horizon does not know",
            consumer.durable,
            E::STREAM
        );
        if let Some(horizon) = self.unpruned.take() {
            let pruner = processed::spawn_pruner(self.def.name, self.db.clone(), horizon, self.shutdown.clone());
            self.tasks.push(pruner);
        }
        let task = consumer::spawn(self.js.clone(), self.db.clone(), consumer, handler, self.shutdown.clone());
        self.tasks.push(task);
    }

    /// The service's outbox of domain events; its relay starts with the first call.
    pub fn outbox(&mut self) -> anyhow::Result<Outbox> {
        if let Some(outbox) = &self.outbox {
            return Ok(outbox.clone());
        }
        let relay = self.relay("outbox-relay", OutboxTable { domain: self.def.domain })?;
        let outbox = Outbox::new(relay);
        self.outbox = Some(outbox.clone());
        Ok(outbox)
    }

    /// Relays another outbox table of the service (the chat worker's event log).
    pub fn relay<S: Source>(&mut self, name: &'static str, source: S) -> anyhow::Result<Relay> {
        let relay = Relay::default();
        let task =
            relay.spawn(self.def.name, name, source, self.db.clone(), self.js.clone(), self.relays_stop.clone())?;
        self.relays.push(task);
        Ok(relay)
    }
}

/// Runs service `S` until `shutdown`, then stops it in order (see the module doc).
pub async fn run<S: Service>(config: S::Config, common: Common, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&common.database_url, S::migrations()).await?;
    let js = jetstream::new(common.client.clone());
    let identity = soulchat_subjects::broker::Identity::worker(S::CONTRACT);
    soulchat_subjects::streams::declare(&js, identity).await?;
    S::declare(&js).await?;
    let mut ctx = Context {
        caller: Caller::new(common.client.clone(), common.request_timeout),
        client: common.client.clone(),
        js,
        db: db.clone(),
        def: S::CONTRACT,
        shutdown: shutdown.clone(),
        drained: CancellationToken::new(),
        relays_stop: CancellationToken::new(),
        tasks: Vec::new(),
        after_requests: Vec::new(),
        relays: Vec::new(),
        outbox: None,
        unpruned: Some(common.processed_events_retention),
    };
    let redeclare =
        soulchat_subjects::streams::declare_after_reconnects(ctx.js.clone(), identity, common.disruptions.clone());
    let stop = shutdown.clone();
    ctx.tasks.push(tokio::spawn(async move {
        tokio::select! {
            _ = redeclare => {}
            _ = stop.cancelled() => {}
        }
    }));
    let started = S::start(config, &mut ctx).await;
    let served = match started {
        Ok(state) => serve::<S>(state, &common, &db, shutdown.clone()).await,
        Err(e) => Err(e),
    };
    // Whatever happened, stop what was started, in order.
    shutdown.cancel();
    for task in ctx.tasks {
        let _ = task.await;
    }
    ctx.drained.cancel();
    for task in ctx.after_requests {
        let _ = task.await;
    }
    ctx.relays_stop.cancel();
    for relay in ctx.relays {
        if tokio::time::timeout(RELAY_DRAIN, relay).await.is_err() {
            tracing::warn!(service = S::CONTRACT.name, "a relay did not finish within {RELAY_DRAIN:?}");
        }
    }
    db.close().await;
    served
}

async fn serve<S: Service>(
    state: Arc<S>,
    common: &Common,
    db: &Database,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stats_source = state.clone();
    let stats: Box<dyn Fn() -> serde_json::Value + Send + Sync> =
        Box::new(move || stats_source.stats().unwrap_or(serde_json::Value::Null));
    let version = env!("CARGO_PKG_VERSION");
    let worker = S::endpoints(Endpoints::new(S::CONTRACT, version, state))
        .start(version, Some(stats), common.client.clone(), shutdown.clone())
        .await?;
    // Ready while serving, with its database answering.
    let db = db.clone();
    common.readiness.add(S::CONTRACT.name, move || {
        let (db, shutdown) = (db.clone(), shutdown.clone());
        async move {
            if shutdown.is_cancelled() {
                return Err("stopping".to_owned());
            }
            match tokio::time::timeout(READY_TIMEOUT, db.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("database: {e}")),
                Err(_) => Err(format!("database: no answer within {READY_TIMEOUT:?}")),
            }
        }
    });
    worker.run_until_shutdown().await;
    Ok(())
}
