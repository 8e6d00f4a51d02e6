//! The profile worker: public profiles (a copy of the username, bio, image) and the follow
//! graph and blocks, answering `soulchat.profile.v1.*`, in the `profile_service` database it alone owns.
//!
//! With Redis it caches profiles (never `following`, which depends on the viewer) under
//! versioned writes, so an update that has returned is never followed by a read of the older
//! profile. It removes a deleted user's profile and edges when `user.deleted` arrives.

mod cache;
mod events;
mod handlers;
mod store;

use std::sync::Arc;

use soulchat_runtime::{Context, Database, Endpoints, Migrations, Outbox, Service};
use soulchat_subjects::{ServiceDef, profile};

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Unset: no cache, every read goes to the database.
    pub redis_url: Option<String>,
}

/// The profile worker's state, shared by every handler.
pub struct Profiles {
    db: Database,
    cache: cache::Cache,
    outbox: Outbox,
}

impl Service for Profiles {
    const CONTRACT: ServiceDef = profile::SERVICE;
    type Config = Config;

    fn migrations() -> &'static Migrations {
        static MIGRATIONS: Migrations = Migrations {
            sqlite: sqlx::migrate!("../../migrations/profile/sqlite"),
            mysql: sqlx::migrate!("../../migrations/profile/mysql"),
        };
        &MIGRATIONS
    }

    async fn start(config: Config, ctx: &mut Context) -> anyhow::Result<Arc<Self>> {
        let profiles = Arc::new(Profiles {
            db: ctx.db.clone(),
            outbox: ctx.outbox()?,
            cache: cache::Cache::connect(config.redis_url.as_deref()).await?,
        });
        ctx.consume(profile::USER_DELETED, profiles.clone());
        Ok(profiles)
    }

    fn endpoints(endpoints: Endpoints<Self>) -> Endpoints<Self> {
        endpoints
            .handle::<profile::Create>(handlers::create)
            .handle::<profile::Delete>(handlers::delete)
            .handle::<profile::Get>(handlers::get)
            .handle::<profile::GetByUser>(handlers::get_by_user)
            .handle::<profile::Update>(handlers::update)
            .handle::<profile::Follow>(handlers::follow)
            .handle::<profile::Unfollow>(handlers::unfollow)
            .handle::<profile::Followers>(handlers::followers)
            .handle::<profile::Following>(handlers::following)
            .handle::<profile::Lookup>(handlers::lookup)
            .handle::<profile::Search>(handlers::search)
            .handle::<profile::Block>(handlers::block)
            .handle::<profile::Unblock>(handlers::unblock)
            .handle::<profile::ListBlocks>(handlers::list_blocks)
            .handle::<profile::BlockedAmong>(handlers::blocked_among)
    }

    /// The cache's hit and miss counters.
    fn stats(&self) -> Option<serde_json::Value> {
        Some(self.cache.stats())
    }
}
