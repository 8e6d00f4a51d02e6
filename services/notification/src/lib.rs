//! The notification worker: in-app notifications and system alerts in the
//! `notification_service` database it alone owns, live frames to the users' sockets, and the
//! external channels (Web Push, email, SMS) behind a JetStream retry queue with a dead-letter
//! stream.
//!
//! Triggers: the registration saga's welcome step (a request), new followers
//! (`profile.followed`), chat events (direct messages and mentions for users with no live
//! socket, being added to a group), and admin alerts (a request). Account email and SMS (the
//! user worker's verification and reset flows) are requests that bypass preferences. The
//! account's email arrives with `user.created`/`user.updated`; `user.deleted` removes
//! everything kept about the user.

mod channels;
mod chat_events;
mod compose;
mod deliveries;
mod handlers;
mod live;
mod presence;
mod stats;
mod store;
mod triggers;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::{Database, Migrations, Outbox, WorkerBuilder, consumer};
use soulchat_subjects::{Caller, chat, notification, profile, streams, user};
use tokio_util::sync::CancellationToken;

pub use deliveries::{ATTEMPTS_HEADER, ERROR_HEADER};

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/notification/sqlite"),
    mysql: sqlx::migrate!("../../migrations/notification/mysql"),
};

/// Attempts per external delivery before it is dead-lettered, unless configured.
pub const DEFAULT_DELIVERY_ATTEMPTS: u32 = 5;
/// The wait after the first failed attempt (doubling after each next one), unless configured.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// Every channel is optional: an unset one is skipped (logged at start, counted in stats).
#[derive(Clone, Default)]
pub struct Config {
    pub database_url: String,
    /// `smtp://host:port` (plain), `smtp://…?tls=required` (STARTTLS) or `smtps://…`.
    pub smtp_url: Option<String>,
    /// The From address of every email, e.g. `SoulChat <noreply@example.com>`.
    pub mail_from: Option<String>,
    /// base64url of the raw 32-byte P-256 private key that signs VAPID tokens.
    pub vapid_private_key: Option<String>,
    /// The VAPID contact, `mailto:…` or `https://…`.
    pub vapid_subject: Option<String>,
    /// The SMS provider's endpoint: POST JSON `{to, text}`.
    pub sms_url: Option<String>,
    /// Sent as `Authorization: Bearer <token>` to the SMS provider.
    pub sms_token: Option<String>,
    /// The web app's address, linked from notification emails.
    pub public_url: Option<String>,
    /// Attempts per delivery before the dead-letter stream (default 5).
    pub delivery_attempts: Option<u32>,
    /// The first retry's delay, doubled after each further failure (default 10 s).
    pub retry_backoff: Option<Duration>,
    /// Accept `http://` push endpoints (tests and local development only).
    pub allow_insecure_push: bool,
}

/// Secrets stay out of logs.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("Config")
            .field("database_url", &self.database_url)
            .field("smtp_url", &secret(&self.smtp_url))
            .field("mail_from", &self.mail_from)
            .field("vapid_private_key", &secret(&self.vapid_private_key))
            .field("vapid_subject", &self.vapid_subject)
            .field("sms_url", &self.sms_url)
            .field("sms_token", &secret(&self.sms_token))
            .field("public_url", &self.public_url)
            .field("delivery_attempts", &self.delivery_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("allow_insecure_push", &self.allow_insecure_push)
            .finish()
    }
}

pub(crate) struct Notifications {
    store: store::Store,
    outbox: Outbox,
    client: async_nats::Client,
    caller: Caller,
    online: presence::OnlineUsers,
    channels: channels::Channels,
    stats: stats::Stats,
    retry: deliveries::RetryPolicy,
    public_url: Option<String>,
    allow_insecure_push: bool,
}

impl Notifications {
    /// Whether the user has a live socket (the gateways keep `soulchat_presence`).
    fn online(&self, user_id: &str) -> bool {
        self.online.is_online(user_id)
    }
}

/// Runs the notification worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let channels = channels::Channels::from_config(&config)?;
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let js = async_nats::jetstream::new(client.clone());
    streams::declare(&js).await?;
    streams::declare_deliveries(&js).await?;
    let (online, presence_watch) =
        presence::OnlineUsers::watch(js.get_key_value(streams::PRESENCE_BUCKET).await?, shutdown.clone());
    let outbox = Outbox::new("notification");
    let relay = outbox.spawn_relay(db.clone(), js.clone(), shutdown.clone());
    let state = Arc::new(Notifications {
        store: store::Store::new(db.clone()),
        outbox,
        client: client.clone(),
        caller: Caller::new(client.clone(), Duration::from_secs(5)),
        online,
        channels,
        stats: stats::Stats::default(),
        retry: deliveries::RetryPolicy {
            attempts: config.delivery_attempts.unwrap_or(DEFAULT_DELIVERY_ATTEMPTS).max(1),
            backoff: config.retry_backoff.unwrap_or(DEFAULT_RETRY_BACKOFF),
        },
        public_url: config.public_url.clone(),
        allow_insecure_push: config.allow_insecure_push,
    });
    let tasks = vec![
        consumer::spawn::<user::Created, _>(
            js.clone(),
            db.clone(),
            "notification-user-created",
            state.clone(),
            shutdown.clone(),
        ),
        consumer::spawn::<user::Updated, _>(
            js.clone(),
            db.clone(),
            "notification-user-updated",
            state.clone(),
            shutdown.clone(),
        ),
        consumer::spawn::<user::Deleted, _>(
            js.clone(),
            db.clone(),
            "notification-user-deleted",
            state.clone(),
            shutdown.clone(),
        ),
        consumer::spawn::<profile::Followed, _>(
            js.clone(),
            db.clone(),
            "notification-profile-followed",
            state.clone(),
            shutdown.clone(),
        ),
        consumer::spawn::<chat::Committed, _>(
            js.clone(),
            db.clone(),
            "notification-chat",
            state.clone(),
            shutdown.clone(),
        ),
        deliveries::spawn(js, state.clone(), shutdown.clone()),
        presence_watch,
    ];
    let stats_source = state.clone();
    let worker = WorkerBuilder::new(notification::SERVICE, env!("CARGO_PKG_VERSION"), state)
        .stats(move || stats_source.stats.to_json(&stats_source.channels))
        .handle::<notification::Welcome, _, _>(handlers::welcome)
        .handle::<notification::List, _, _>(handlers::list)
        .handle::<notification::MarkRead, _, _>(handlers::mark_read)
        .handle::<notification::GetPreferences, _, _>(handlers::get_preferences)
        .handle::<notification::PutPreferences, _, _>(handlers::put_preferences)
        .handle::<notification::SubscribePush, _, _>(handlers::subscribe_push)
        .handle::<notification::UnsubscribePush, _, _>(handlers::unsubscribe_push)
        .handle::<notification::Alert, _, _>(handlers::alert)
        .handle::<notification::SendEmail, _, _>(handlers::send_email)
        .handle::<notification::SendSms, _, _>(handlers::send_sms)
        .start(client, shutdown)
        .await?;
    worker.run_until_shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    for task in tasks {
        let _ = task.await;
    }
    db.close().await;
    Ok(())
}
