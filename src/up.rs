//! Starting roles: one per process, or all of them together for development (`up`). Either
//! way each role has its own NATS connection and reaches the others only through it. Which
//! workers exist is `soulchat_subjects::SERVICES`; [`launch`] binds each contract to the crate
//! that implements it.

use anyhow::Context;
use soulchat_runtime::Database;
use soulchat_runtime::admin::{self, Readiness};
use soulchat_runtime::nats_server::{NatsServer, secured_config};
use soulchat_runtime::service::{self, Common};
use soulchat_subjects::broker::Identity;
use soulchat_subjects::{SERVICES, ServiceDef};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::{Configured, Settings, dev_jwt_secret};

/// The gateway's name where roles are listed (`/readyz`, its NATS connection).
const GATEWAY: &str = "soulchat-gateway";

/// Everything in one process. Without NATS_URL it starts a nats-server child with its store
/// under the data dir and authentication on (one NKey per identity in `<data dir>/nats`, kept
/// across restarts, each role connecting as itself), and stops it on the way out.
pub async fn run(mut settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating the data dir {}", settings.data_dir.display()))?;
    let mut child = None;
    if settings.nats_url.is_none() {
        let store = settings.data_dir.join("nats");
        let config = secured_config(&store, "")?;
        let server = NatsServer::start_with(&store, None, Some(config)).await?;
        settings.nats_url = Some(server.url());
        tracing::info!(keys = %store.display(), "nats-server child requires authentication: each identity's NKey seed is <keys>/<name>.nk");
        settings.nats_key_dir = Some(store);
        child = Some(server);
    }
    provision(&settings).await?;
    if settings.jwt_secret.is_none() {
        settings.jwt_secret = Some(dev_jwt_secret(&settings.data_dir)?);
    }

    // One admin listener reports on every role.
    let readiness = Readiness::default();
    for def in SERVICES {
        readiness.expect(def.name);
    }
    readiness.expect(GATEWAY);
    let admin = Admin::start(&settings, readiness.clone(), &shutdown).await?;
    let mut roles = JoinSet::new();
    for def in SERVICES {
        let (settings, readiness, shutdown) = (settings.clone(), readiness.clone(), shutdown.clone());
        roles.spawn(
            async move { serve_worker(&settings, def.domain, readiness, shutdown).await.with_context(|| def.name) },
        );
    }
    let (gateway_settings, gateway_shutdown) = (settings.clone(), shutdown.clone());
    roles.spawn(async move { serve_gateway(&gateway_settings, readiness, gateway_shutdown).await.context("gateway") });

    // The first role to fail stops the others; otherwise all stop together on shutdown.
    let mut outcome = Ok(());
    while let Some(done) = roles.join_next().await {
        let result = done.context("a role panicked").and_then(|r| r);
        if let Err(e) = result {
            if outcome.is_ok() {
                outcome = Err(e);
            }
            shutdown.cancel();
        }
    }
    admin.stop().await;
    if let Some(mut server) = child {
        server.stop().await?;
    }
    outcome
}

/// The admin listener of a process (`/metrics`, `/healthz`, `/readyz`), stopped after its roles;
/// none with `--metrics-addr off`.
struct Admin(Option<(CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>)>);

impl Admin {
    async fn start(settings: &Settings, readiness: Readiness, shutdown: &CancellationToken) -> anyhow::Result<Admin> {
        let Some(addr) = settings.metrics_addr.0 else { return Ok(Admin(None)) };
        let listener = admin::Listener::bind(addr, readiness).await?;
        let stop = shutdown.child_token();
        let task = tokio::spawn(listener.serve(stop.clone()));
        Ok(Admin(Some((stop, task))))
    }

    async fn stop(self) {
        let Some((stop, task)) = self.0 else { return };
        stop.cancel();
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("metrics listener: {e:#}"),
            Err(e) => tracing::warn!("metrics listener: {e}"),
        }
    }
}

/// The gateway alone, with its admin listener.
pub async fn gateway(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    readiness.expect(GATEWAY);
    let admin = Admin::start(settings, readiness.clone(), &shutdown).await?;
    let served = serve_gateway(settings, readiness, shutdown).await;
    admin.stop().await;
    served
}

/// The worker of one domain (`user`, `profile`, ...) alone, with its admin listener, until `shutdown`.
pub async fn worker(settings: &Settings, domain: &str, shutdown: CancellationToken) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    readiness.expect(contract(domain)?.name);
    let admin = Admin::start(settings, readiness.clone(), &shutdown).await?;
    let served = serve_worker(settings, domain, readiness, shutdown).await;
    admin.stop().await;
    served
}

async fn serve_gateway(settings: &Settings, readiness: Readiness, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = settings.gateway(settings.jwt_secret()?);
    let (client, disruptions) =
        soulchat_subjects::connect::connect_observed(settings.nats(Identity::Gateway)?, GATEWAY).await?;
    let gateway = soulchat_gateway::Gateway::bind(config, client.clone(), disruptions, shutdown.clone()).await?;
    readiness.add_nats(GATEWAY, client.clone());
    gateway.serve(shutdown).await?;
    client.drain().await.ok();
    Ok(())
}

async fn serve_worker(
    settings: &Settings,
    domain: &str,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let def = contract(domain)?;
    let identity = Identity::worker(def).with_context(|| format!("no NATS identity for {}", def.name))?;
    let (client, disruptions) =
        soulchat_subjects::connect::connect_observed(settings.nats(identity)?, def.name).await?;
    let common = Common {
        client,
        disruptions,
        database_url: settings.database_url(def.domain),
        request_timeout: settings.request_timeout,
        readiness,
        processed_events_retention: settings.processed_events_retention,
    };
    launch(settings, def, Mode::Serve(Box::new(common), shutdown)).await
}

/// Creates or updates the streams and buckets, as `admin` (the one identity allowed to).
async fn provision(settings: &Settings) -> anyhow::Result<()> {
    let client = soulchat_subjects::connect::connect(settings.nats(Identity::Admin)?, "soulchat-provision").await?;
    let js = async_nats::jetstream::new(client.clone());
    let provisioning = soulchat_subjects::streams::Provisioning {
        audit_retention: settings.audit_retention,
        replicas: settings.nats_replicas,
    };
    soulchat_subjects::streams::provision_with(&js, provisioning).await?;
    client.drain().await.ok();
    Ok(())
}

/// Provisions the streams and buckets, and applies every service's migrations to its database.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    provision(settings).await?;
    println!("nats: streams and buckets provisioned");
    for def in SERVICES {
        launch(settings, def, Mode::Migrate).await.with_context(|| format!("migrating the {} database", def.domain))?;
        println!("{}: migrated", def.domain);
    }
    Ok(())
}

/// Prints the audit events `filter` selects, oldest first, one a line (read as `admin`).
pub async fn audit(settings: &Settings, filter: &soulchat_subjects::audit::Filter) -> anyhow::Result<()> {
    let client = soulchat_subjects::connect::connect(settings.nats(Identity::Admin)?, "soulchat-audit").await?;
    let entries = soulchat_subjects::audit::read(&async_nats::jetstream::new(client.clone()), filter).await?;
    let lines: String = entries.iter().map(|e| format!("{e}\n")).collect();
    client.drain().await.ok();
    crate::print(&lines)
}

fn contract(domain: &str) -> anyhow::Result<ServiceDef> {
    SERVICES.into_iter().find(|s| s.domain == domain).with_context(|| format!("no worker named {domain:?}"))
}

enum Mode {
    Serve(Box<Common>, CancellationToken),
    Migrate,
}

/// The one place a contract meets the crate that serves it.
async fn launch(settings: &Settings, def: ServiceDef, mode: Mode) -> anyhow::Result<()> {
    use soulchat_subjects::{chat, notification, profile, user};
    match def {
        d if d == user::SERVICE => start::<soulchat_user::Users>(settings, mode).await,
        d if d == profile::SERVICE => start::<soulchat_profile::Profiles>(settings, mode).await,
        d if d == chat::SERVICE => start::<soulchat_chat::Chat>(settings, mode).await,
        d if d == notification::SERVICE => start::<soulchat_notification::Notifications>(settings, mode).await,
        d => anyhow::bail!("no crate serves {}", d.name),
    }
}

async fn start<S: Configured>(settings: &Settings, mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Serve(common, shutdown) => service::run::<S>(S::config(settings)?, *common, shutdown).await,
        Mode::Migrate => {
            Database::connect(&settings.database_url(S::CONTRACT.domain), S::migrations()).await?.close().await;
            Ok(())
        }
    }
}
