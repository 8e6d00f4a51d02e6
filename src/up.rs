//! Starting roles: one per process, or all of them together for development (`up`). Either
//! way each role has its own NATS connection and reaches the others only through it.

use anyhow::Context;
use soulchat_runtime::nats_server::NatsServer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::settings::{Domain, Settings, dev_jwt_secret};

const DOMAINS: [Domain; 4] = [Domain::User, Domain::Profile, Domain::Chat, Domain::Notification];

/// Everything in one process. Without NATS_URL it starts a nats-server child with its store
/// under the data dir, and stops it on the way out.
pub async fn run(mut settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating the data dir {}", settings.data_dir.display()))?;
    let mut child = None;
    if settings.nats_url.is_none() {
        let server = NatsServer::start(&settings.data_dir.join("nats"), None).await?;
        settings.nats_url = Some(server.url());
        child = Some(server);
    }
    if settings.jwt_secret.is_none() {
        settings.jwt_secret = Some(dev_jwt_secret(&settings.data_dir)?);
    }

    let mut roles = JoinSet::new();
    for domain in DOMAINS {
        let (settings, shutdown) = (settings.clone(), shutdown.clone());
        roles.spawn(
            async move { worker(&settings, domain, shutdown).await.with_context(|| format!("{domain:?} worker")) },
        );
    }
    let (gateway_settings, gateway_shutdown) = (settings.clone(), shutdown.clone());
    roles.spawn(async move { gateway(&gateway_settings, gateway_shutdown).await.context("gateway") });

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
    if let Some(mut server) = child {
        server.stop().await?;
    }
    outcome
}

pub async fn gateway(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = settings.gateway(settings.jwt_secret()?);
    let (client, disruptions) =
        soulchat_subjects::connect::connect_observed(&settings.nats_url(), "soulchat-gateway").await?;
    let gateway = soulchat_gateway::Gateway::bind(config, client.clone(), disruptions, shutdown.clone()).await?;
    gateway.serve(shutdown).await?;
    client.drain().await.ok();
    Ok(())
}

pub async fn worker(settings: &Settings, domain: Domain, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name = format!("soulchat-{}", format!("{domain:?}").to_lowercase());
    let client = soulchat_subjects::connect::connect(&settings.nats_url(), &name).await?;
    match domain {
        Domain::User => soulchat_user::run(settings.user(settings.jwt_secret()?), client, shutdown).await,
        Domain::Profile => soulchat_profile::run(settings.profile(), client, shutdown).await,
        Domain::Chat => soulchat_chat::run(settings.chat(), client, shutdown).await,
        Domain::Notification => soulchat_notification::run(settings.notification(), client, shutdown).await,
    }
}

/// Applies every service's migrations to its database.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    for domain in DOMAINS {
        let migrations = match domain {
            Domain::User => &soulchat_user::MIGRATIONS,
            Domain::Profile => &soulchat_profile::MIGRATIONS,
            Domain::Chat => &soulchat_chat::MIGRATIONS,
            Domain::Notification => &soulchat_notification::MIGRATIONS,
        };
        let url = settings.database_url(domain);
        soulchat_runtime::Database::connect(&url, migrations)
            .await
            .with_context(|| format!("migrating the {domain:?} database"))?
            .close()
            .await;
        println!("{}: migrated", format!("{domain:?}").to_lowercase());
    }
    Ok(())
}
