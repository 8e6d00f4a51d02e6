//! The user worker: accounts, credentials and sessions, answering `soulchat.user.v1.*`.
//!
//! It owns the `user_service` database alone. Passwords are hashed with argon2id in a bounded
//! pool off the async threads (a full pool refuses before anything is written); access tokens are short-lived JWTs, refresh tokens rotate within a family, and every
//! revocation is written to the `soulchat_revoked` bucket that all gateway replicas watch. It
//! drives the sagas that span workers (registration, rename, deletion; see [`sagas`]).

mod account_tokens;
mod audit;
mod handlers;
mod passwords;
mod revocations;
mod sagas;
mod store;
mod suspensions;
mod tokens;
mod validate;
mod verification;

use std::sync::Arc;

use soulchat_runtime::{Context, Database, Endpoints, Migrations, Outbox, Service};
use soulchat_subjects::{Caller, ServiceDef, user};

pub use passwords::HashPool;
pub use tokens::TokenConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub tokens: TokenConfig,
    /// Where clients reach the API, for links in emails (no trailing slash).
    pub public_url: String,
    pub hashing: HashPool,
}

/// The user worker: everything a handler needs, shared by all requests.
pub struct Users {
    db: Database,
    outbox: Outbox,
    passwords: passwords::Hasher,
    tokens: tokens::Issuer,
    revocations: revocations::Revocations,
    /// Calls the profile and notification workers (saga steps, bio and image, account mail).
    caller: Caller,
    public_url: String,
}

impl Service for Users {
    const CONTRACT: ServiceDef = user::SERVICE;
    type Config = Config;

    fn migrations() -> &'static Migrations {
        static MIGRATIONS: Migrations = Migrations {
            sqlite: sqlx::migrate!("../../migrations/user/sqlite"),
            mysql: sqlx::migrate!("../../migrations/user/mysql"),
        };
        &MIGRATIONS
    }

    async fn start(config: Config, ctx: &mut Context) -> anyhow::Result<Arc<Self>> {
        let users = Arc::new(Users {
            db: ctx.db.clone(),
            outbox: ctx.outbox()?,
            passwords: passwords::Hasher::new(config.hashing),
            tokens: tokens::Issuer::new(&config.tokens),
            revocations: revocations::Revocations::open(&ctx.js).await?,
            caller: ctx.caller.clone(),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
        });
        // Idle for twice the call deadline: no live request can still be driving such a saga.
        let recovery = sagas::spawn_recovery(users.clone(), ctx.caller.timeout() * 2, ctx.shutdown());
        ctx.spawn(recovery);
        Ok(users)
    }

    fn endpoints(endpoints: Endpoints<Self>) -> Endpoints<Self> {
        endpoints
            .handle::<user::Register>(handlers::register)
            .handle::<user::Login>(handlers::login)
            .handle::<user::GetCurrent>(handlers::get_current)
            .handle::<user::Update>(handlers::update)
            .handle::<user::Delete>(handlers::delete)
            .handle::<user::Refresh>(handlers::refresh)
            .handle::<user::Logout>(handlers::logout)
            .handle::<user::RequestEmailVerification>(verification::request_email_verification)
            .handle::<user::VerifyEmail>(verification::verify_email)
            .handle::<user::SetPhone>(verification::set_phone)
            .handle::<user::VerifyPhone>(verification::verify_phone)
            .handle::<user::RequestPasswordReset>(verification::request_password_reset)
            .handle::<user::ResetPassword>(verification::reset_password)
            .handle::<user::Contact>(verification::contact)
            .handle::<user::Suspend>(suspensions::suspend)
    }
}
