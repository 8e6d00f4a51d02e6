//! The notification worker: in-app notifications and system alerts in the
//! `notification_service` database it alone owns, published live for the users' sockets, and the
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
mod egress;
mod handlers;
mod live;
mod presence;
mod stats;
mod store;
mod triggers;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use soulchat_runtime::{Context, Database, Endpoints, Migrations, Outbox, Service};
use soulchat_subjects::{Caller, notification, streams};

static MIGRATIONS: Migrations = Migrations {
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
    /// Accept `http://` and loopback push endpoints (tests and local development only: never a
    /// setting, so every deployment has https to public addresses).
    pub allow_insecure_push: bool,
}

/// Secrets stay out of logs.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("Config")
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

/// The worker's state, shared by its handlers, consumers and delivery loop.
pub struct Notifications {
    db: Database,
    outbox: Outbox,
    client: async_nats::Client,
    caller: Caller,
    online: presence::OnlineUsers,
    channels: channels::Channels,
    stats: stats::Stats,
    retry: deliveries::RetryPolicy,
    public_url: Option<String>,
    egress: egress::Egress,
}

impl Notifications {
    /// Whether the user has a live socket (the gateways keep `soulchat_presence`).
    fn online(&self, user_id: &str) -> bool {
        self.online.is_online(user_id)
    }
}

impl Service for Notifications {
    const CONTRACT: soulchat_subjects::ServiceDef = notification::SERVICE;
    type Config = Config;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    /// The delivery queue and its dead-letter stream are this worker's alone.
    async fn declare(js: &jetstream::Context) -> anyhow::Result<()> {
        streams::declare_deliveries(js).await
    }

    async fn start(config: Config, ctx: &mut Context) -> anyhow::Result<Arc<Self>> {
        let egress = egress::Egress::from_config(config.allow_insecure_push);
        let channels = channels::Channels::from_config(&config, egress)?;
        let (online, presence_watch) =
            presence::OnlineUsers::watch(ctx.js.get_key_value(streams::PRESENCE_BUCKET).await?, ctx.shutdown());
        ctx.spawn(presence_watch);
        let state = Arc::new(Notifications {
            db: ctx.db.clone(),
            outbox: ctx.outbox()?,
            client: ctx.client.clone(),
            caller: ctx.caller.clone(),
            online,
            channels,
            stats: stats::Stats::default(),
            retry: deliveries::RetryPolicy {
                attempts: config.delivery_attempts.unwrap_or(DEFAULT_DELIVERY_ATTEMPTS).max(1),
                backoff: config.retry_backoff.unwrap_or(DEFAULT_RETRY_BACKOFF),
            },
            public_url: config.public_url,
            egress,
        });
        ctx.consume(notification::USER_CREATED, state.clone());
        ctx.consume(notification::USER_UPDATED, state.clone());
        ctx.consume(notification::USER_DELETED, state.clone());
        ctx.consume(notification::PROFILE_FOLLOWED, state.clone());
        ctx.consume(notification::CHAT, state.clone());
        ctx.spawn(deliveries::spawn(ctx.js.clone(), state.clone(), ctx.shutdown()));
        Ok(state)
    }

    fn endpoints(endpoints: Endpoints<Self>) -> Endpoints<Self> {
        endpoints
            .handle::<notification::Welcome>(handlers::welcome)
            .handle::<notification::List>(handlers::list)
            .handle::<notification::MarkRead>(handlers::mark_read)
            .handle::<notification::GetPreferences>(handlers::get_preferences)
            .handle::<notification::PutPreferences>(handlers::put_preferences)
            .handle::<notification::PushKey>(handlers::push_key)
            .handle::<notification::SubscribePush>(handlers::subscribe_push)
            .handle::<notification::UnsubscribePush>(handlers::unsubscribe_push)
            .handle::<notification::Alert>(handlers::alert)
            .handle::<notification::SendEmail>(handlers::send_email)
            .handle::<notification::SendSms>(handlers::send_sms)
    }

    fn stats(&self) -> Option<serde_json::Value> {
        Some(self.stats.to_json(&self.channels))
    }
}
