//! The profile worker: public profiles (a copy of the username, bio, image) and the follow
//! graph, answering `soulchat.profile.v1.*`, in the `profile_service` database it alone owns.
//!
//! With Redis it caches profiles (never `following`, which depends on the viewer) under
//! versioned writes, so an update that has returned is never followed by a read of the older
//! profile. It removes a deleted user's profile and edges when `user.deleted` arrives.

mod cache;
mod events;
mod handlers;
mod store;

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::{Database, Migrations, Outbox, WorkerBuilder, consumer};
use soulchat_subjects::{profile, user};
use tokio_util::sync::CancellationToken;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/profile/sqlite"),
    mysql: sqlx::migrate!("../../migrations/profile/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// Unset: no cache, every read goes to the database.
    pub redis_url: Option<String>,
}

pub(crate) struct Profiles {
    store: store::Store,
    cache: cache::Cache,
    outbox: Outbox,
}

/// Runs the profile worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let js = async_nats::jetstream::new(client.clone());
    soulchat_subjects::streams::declare(&js).await?;
    let outbox = Outbox::new("profile");
    let relay = outbox.spawn_relay(db.clone(), js.clone(), shutdown.clone());
    let profiles = Arc::new(Profiles {
        store: store::Store::new(db.clone()),
        cache: cache::Cache::connect(config.redis_url.as_deref()).await?,
        outbox,
    });
    let deletions =
        consumer::spawn::<user::Deleted, _>(js, db.clone(), "profile-user-deleted", profiles.clone(), shutdown.clone());
    let stats_source = profiles.clone();
    let worker = WorkerBuilder::new(profile::SERVICE, env!("CARGO_PKG_VERSION"), profiles)
        .stats(move || stats_source.cache.stats())
        .handle::<profile::Create, _, _>(handlers::create)
        .handle::<profile::Delete, _, _>(handlers::delete)
        .handle::<profile::Get, _, _>(handlers::get)
        .handle::<profile::GetByUser, _, _>(handlers::get_by_user)
        .handle::<profile::Update, _, _>(handlers::update)
        .handle::<profile::Follow, _, _>(handlers::follow)
        .handle::<profile::Unfollow, _, _>(handlers::unfollow)
        .handle::<profile::Followers, _, _>(handlers::followers)
        .handle::<profile::Following, _, _>(handlers::following)
        .handle::<profile::Lookup, _, _>(handlers::lookup)
        .handle::<profile::Search, _, _>(handlers::search)
        .start(client, shutdown)
        .await?;
    worker.run_until_shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    let _ = deletions.await;
    db.close().await;
    Ok(())
}
