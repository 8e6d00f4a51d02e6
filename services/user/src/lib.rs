//! The user worker: accounts, credentials and sessions, answering `soulchat.user.v1.*`.
//!
//! It owns the `user_service` database alone. Passwords are hashed with argon2id off the async
//! threads; access tokens are short-lived JWTs, refresh tokens rotate within a family, and every
//! revocation is written to the `soulchat_revoked` bucket that all gateway replicas watch. It
//! drives the sagas that span workers (registration, rename, deletion; see [`sagas`]).

mod account_tokens;
mod handlers;
mod passwords;
mod revocations;
mod sagas;
mod store;
mod tokens;
mod validate;
mod verification;

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::{Database, Migrations, Outbox, WorkerBuilder};
use soulchat_subjects::{Caller, user};
use tokio_util::sync::CancellationToken;

pub use tokens::TokenConfig;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/user/sqlite"),
    mysql: sqlx::migrate!("../../migrations/user/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub tokens: TokenConfig,
    /// Deadline of each call to another worker (a saga step).
    pub request_timeout: Duration,
    /// Where clients reach the API, for links in emails (no trailing slash).
    pub public_url: String,
}

/// Everything a handler needs; shared by all requests.
pub(crate) struct Users {
    store: store::Store,
    outbox: Outbox,
    passwords: passwords::Hasher,
    tokens: tokens::Issuer,
    revocations: revocations::Revocations,
    /// Calls the profile and notification workers (saga steps, bio and image, account mail).
    caller: Caller,
    public_url: String,
}

/// Runs the user worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let js = async_nats::jetstream::new(client.clone());
    soulchat_subjects::streams::declare(&js).await?;
    let outbox = Outbox::new("user");
    let relay = outbox.spawn_relay(db.clone(), js.clone(), shutdown.clone());
    let users = Arc::new(Users {
        store: store::Store::new(db.clone()),
        outbox,
        passwords: passwords::Hasher::new(),
        tokens: tokens::Issuer::new(&config.tokens),
        revocations: revocations::Revocations::open(&js).await?,
        caller: Caller::new(client.clone(), config.request_timeout),
        public_url: config.public_url.trim_end_matches('/').to_owned(),
    });
    // Idle for twice the call deadline: no live request can still be driving such a saga.
    let recovery = sagas::spawn_recovery(users.clone(), config.request_timeout * 2, shutdown.clone());
    let worker = WorkerBuilder::new(user::SERVICE, env!("CARGO_PKG_VERSION"), users)
        .handle::<user::Register, _, _>(handlers::register)
        .handle::<user::Login, _, _>(handlers::login)
        .handle::<user::GetCurrent, _, _>(handlers::get_current)
        .handle::<user::Update, _, _>(handlers::update)
        .handle::<user::Delete, _, _>(handlers::delete)
        .handle::<user::Refresh, _, _>(handlers::refresh)
        .handle::<user::Logout, _, _>(handlers::logout)
        .handle::<user::RequestEmailVerification, _, _>(verification::request_email_verification)
        .handle::<user::VerifyEmail, _, _>(verification::verify_email)
        .handle::<user::SetPhone, _, _>(verification::set_phone)
        .handle::<user::VerifyPhone, _, _>(verification::verify_phone)
        .handle::<user::RequestPasswordReset, _, _>(verification::request_password_reset)
        .handle::<user::ResetPassword, _, _>(verification::reset_password)
        .handle::<user::Contact, _, _>(verification::contact)
        .start(client, shutdown)
        .await?;
    worker.run_until_shutdown().await;
    let _ = recovery.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    db.close().await;
    Ok(())
}
