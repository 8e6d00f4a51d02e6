//! Every setting of every role, as flags with environment-variable twins: the same names in
//! compose, Kubernetes and the README's configuration table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use soulchat_runtime::Service;
use soulchat_subjects::broker::Identity;
use soulchat_subjects::connect::{Credentials, Nats};
use soulchat_subjects::{chat, notification, profile, user};

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// The NATS server or cluster. Unset: `up` starts its own nats-server child; other roles use nats://127.0.0.1:4222.
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// This role's NATS identity: an NKey seed file (`<data dir>/nats/<name>.nk` as `up` generates).
    #[arg(long, env = "SOULCHAT_NATS_NKEY", global = true)]
    pub nats_nkey: Option<PathBuf>,
    /// This role's NATS identity: a JWT `.creds` file (operator/account deployments).
    #[arg(long, env = "SOULCHAT_NATS_CREDS", global = true)]
    pub nats_creds: Option<PathBuf>,
    /// This role's NATS user (with SOULCHAT_NATS_PASSWORD).
    #[arg(long, env = "SOULCHAT_NATS_USER", global = true)]
    pub nats_user: Option<String>,
    #[arg(long, env = "SOULCHAT_NATS_PASSWORD", hide_env_values = true, global = true)]
    pub nats_password: Option<soulchat_subjects::connect::Secret>,
    /// A CA certificate (PEM) for TLS to NATS (`tls://` URLs); unset: the system's roots.
    #[arg(long, env = "SOULCHAT_NATS_CA", global = true)]
    pub nats_ca: Option<PathBuf>,
    /// Set by `up` for its own nats-server: each role's seed is `<dir>/<name>.nk`.
    #[arg(skip)]
    pub nats_key_dir: Option<PathBuf>,
    /// SQLite files, the child nats-server's store, generated development secrets.
    #[arg(long, env = "SOULCHAT_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// The built web client (`scripts/build-web` makes `web/dist`), served at `/`. Unset: `/` answers 404.
    #[arg(long, env = "SOULCHAT_WEB_DIR", global = true)]
    pub web_dir: Option<PathBuf>,
    /// Log lines on stderr: `text` or `json` (JSON lines). Unset: text on a terminal, json otherwise.
    #[arg(long, env = "SOULCHAT_LOG_FORMAT", global = true)]
    pub log_format: Option<soulchat_runtime::telemetry::LogFormat>,
    /// How long the audit log (the SOULCHAT_AUDIT stream) keeps an event; applied when streams are provisioned (`up`, `migrate`).
    #[arg(long, env = "SOULCHAT_AUDIT_RETENTION", default_value = "90days", value_parser = humantime::parse_duration, global = true)]
    pub audit_retention: Duration,
    /// Copies JetStream keeps of every stream and bucket, applied when they are provisioned: 1 to 5, or `auto` (3 on a cluster advertising three or more servers, else 1).
    #[arg(long, env = "SOULCHAT_NATS_REPLICAS", default_value = "auto", global = true)]
    pub nats_replicas: soulchat_subjects::streams::Replicas,
    /// How long the chat worker keeps conversation events for resume; a client away longer is told to read history.
    #[arg(long, env = "SOULCHAT_CHAT_EVENT_RETENTION", default_value = "7days", value_parser = humantime::parse_duration, global = true)]
    pub chat_event_retention: Duration,
    /// How long an uploaded attachment may wait to be sent in a message before the chat worker deletes it.
    #[arg(long, env = "SOULCHAT_ATTACHMENT_UNUSED", default_value = "1day", value_parser = humantime::parse_duration, global = true)]
    pub attachment_unused: Duration,
    /// The largest attachment upload in bytes (the gateway answers 413 beyond it).
    #[arg(long, env = "SOULCHAT_ATTACHMENT_MAX_BYTES", default_value_t = soulchat_gateway::DEFAULT_ATTACHMENT_MAX_BYTES, global = true)]
    pub attachment_max_bytes: u64,
    /// How long a worker remembers the ids of events it processed (to recognise a redelivery); at least the longest age of the consumed streams plus an hour.
    #[arg(long, env = "SOULCHAT_PROCESSED_EVENTS_RETENTION", default_value = "15days", global = true)]
    pub processed_events_retention: soulchat_runtime::processed::Horizon,
    /// The gateway's listen address.
    #[arg(long, env = "SOULCHAT_HTTP_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub http_addr: SocketAddr,
    /// The admin listener: Prometheus `/metrics`, `/healthz` and `/readyz` of this process (all its roles under `up`); `off`: none, and nothing is recorded.
    #[arg(long, env = "SOULCHAT_METRICS_ADDR", default_value = "127.0.0.1:9464", global = true)]
    pub metrics_addr: AdminAddr,
    /// Access-token signing key. `up` generates one into the data dir; required otherwise.
    #[arg(long, env = "SOULCHAT_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Gateway -> worker deadline.
    #[arg(long, env = "SOULCHAT_REQUEST_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Allowed browser origins, comma-separated.
    #[arg(long, env = "SOULCHAT_CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,
    /// Redis for the profile cache and shared rate limits. Unset: no cache, per-process limits.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Database URLs; default sqlite://<data dir>/<service>.db.
    #[arg(long, env = "SOULCHAT_USER_DATABASE_URL", global = true)]
    pub user_database_url: Option<String>,
    #[arg(long, env = "SOULCHAT_PROFILE_DATABASE_URL", global = true)]
    pub profile_database_url: Option<String>,
    #[arg(long, env = "SOULCHAT_CHAT_DATABASE_URL", global = true)]
    pub chat_database_url: Option<String>,
    #[arg(long, env = "SOULCHAT_NOTIFICATION_DATABASE_URL", global = true)]
    pub notification_database_url: Option<String>,
    /// Access-token lifetime.
    #[arg(long, env = "SOULCHAT_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub access_token_ttl: Duration,
    /// Refresh-token family lifetime.
    #[arg(long, env = "SOULCHAT_REFRESH_TOKEN_TTL", default_value = "30days", value_parser = humantime::parse_duration, global = true)]
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token still yields the same new pair (parallel refreshes); presented after that, it revokes its session.
    #[arg(long, env = "SOULCHAT_REFRESH_GRACE", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub refresh_grace: Duration,
    /// Password hashes (argon2id) computed at once by the user worker. Unset: one per core.
    #[arg(long, env = "SOULCHAT_PASSWORD_HASH_WORKERS", global = true)]
    pub password_hash_workers: Option<usize>,
    /// Password hashes that may wait for a worker; beyond them, 503 with Retry-After before anything is written.
    #[arg(long, env = "SOULCHAT_PASSWORD_HASH_QUEUE", default_value_t = 16, global = true)]
    pub password_hash_queue: usize,
    /// Failed logins allowed per account from one client address in one window (others can still log in).
    #[arg(long, env = "SOULCHAT_LOGIN_LIMIT_ACCOUNT", default_value_t = 10, global = true)]
    pub login_limit_account: u32,
    /// Failed logins allowed per client address, over all accounts, in one window.
    #[arg(long, env = "SOULCHAT_LOGIN_LIMIT_IP", default_value_t = 100, global = true)]
    pub login_limit_ip: u32,
    /// SMTP relay for email notifications: `smtp://host:port`, `smtp://…?tls=required`, `smtps://…`. Unset: email skipped.
    #[arg(long, env = "SOULCHAT_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// The From address of every email.
    #[arg(long, env = "SOULCHAT_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Web Push VAPID signing key (base64url raw P-256 private key). Unset: push skipped.
    #[arg(long, env = "SOULCHAT_VAPID_PRIVATE_KEY", hide_env_values = true, global = true)]
    pub vapid_private_key: Option<String>,
    /// The VAPID contact (`mailto:…` or `https://…`).
    #[arg(long, env = "SOULCHAT_VAPID_SUBJECT", global = true)]
    pub vapid_subject: Option<String>,
    /// HTTP SMS provider: POST JSON `{to, text}`. Unset: SMS skipped.
    #[arg(long, env = "SOULCHAT_SMS_URL", global = true)]
    pub sms_url: Option<String>,
    /// Bearer token for the SMS provider.
    #[arg(long, env = "SOULCHAT_SMS_TOKEN", hide_env_values = true, global = true)]
    pub sms_token: Option<String>,
    /// Attempts per push, email or SMS delivery before it goes to the dead-letter stream.
    #[arg(long, env = "SOULCHAT_DELIVERY_ATTEMPTS", default_value_t = 5, global = true)]
    pub delivery_attempts: u32,
    /// The first delivery retry's delay, doubled after each further failure.
    #[arg(long, env = "SOULCHAT_DELIVERY_BACKOFF", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub delivery_backoff: Duration,
    /// User ids allowed to send system alerts, handle reports and suspend accounts, comma-separated.
    #[arg(long, env = "SOULCHAT_ADMIN_USER_IDS", value_delimiter = ',', global = true)]
    pub admin_user_ids: Vec<String>,
    /// Where clients reach the API, for links in emails. Default: http://<http addr>.
    #[arg(long, env = "SOULCHAT_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Messages one user may send per second (REST and WebSocket together).
    #[arg(long, env = "SOULCHAT_SEND_LIMIT", default_value_t = 50, global = true)]
    pub send_limit: u32,
    /// Frames queued per WebSocket before the socket counts as too slow and is closed (4000).
    #[arg(long, env = "SOULCHAT_SOCKET_QUEUE", default_value_t = 1024, global = true)]
    pub socket_queue: usize,
    /// The login-limit window.
    #[arg(long, env = "SOULCHAT_LOGIN_LIMIT_WINDOW", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub login_limit_window: Duration,
    /// Requests per client address, every route but /healthz and /readyz: a token bucket,
    /// `count/unit[:burst]` with unit s, m or h. Shared through Redis when REDIS_URL is set.
    #[arg(long, env = "SOULCHAT_RATE_LIMIT", default_value = "100/s:200", global = true)]
    pub rate_limit: soulchat_gateway::Rate,
    /// Requests per user (a valid access token), every route.
    #[arg(long, env = "SOULCHAT_USER_RATE_LIMIT", default_value = "500/s:1000", global = true)]
    pub user_rate_limit: soulchat_gateway::Rate,
    /// Registrations and password-reset requests per client address.
    #[arg(long, env = "SOULCHAT_ACCOUNT_RATE_LIMIT", default_value = "1/s:20", global = true)]
    pub account_rate_limit: soulchat_gateway::Rate,
    /// Proxies whose X-Forwarded-For names the client: addresses or CIDR networks, comma-separated.
    #[arg(long, env = "SOULCHAT_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<soulchat_gateway::ProxyNet>,
    /// Open HTTP connections (WebSockets included). Default, and at most: the open-files limit less 1024.
    #[arg(long, env = "SOULCHAT_HTTP_MAX_CONNECTIONS", global = true)]
    pub http_max_connections: Option<usize>,
    /// Open HTTP connections per client address (trusted proxies are exempt).
    #[arg(long, env = "SOULCHAT_HTTP_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 4096, global = true)]
    pub http_max_connections_per_address: usize,
    /// Time for a request head to arrive (also bounds a keep-alive connection's wait for its next request).
    #[arg(long, env = "SOULCHAT_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub http_header_timeout: Duration,
    /// Time for a request body to arrive (408 after it).
    #[arg(long, env = "SOULCHAT_HTTP_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub http_body_timeout: Duration,
    /// A connection with no traffic either way for this long is closed (a request in flight finishes).
    #[arg(long, env = "SOULCHAT_HTTP_IDLE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub http_idle_timeout: Duration,
}

/// Where the admin listener listens, or `off`.
#[derive(Debug, Clone, Copy)]
pub struct AdminAddr(pub Option<SocketAddr>);

impl std::str::FromStr for AdminAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(AdminAddr(None)),
            addr => addr.parse().map(|addr| AdminAddr(Some(addr))).map_err(|e| format!("{e} (an address, or `off`)")),
        }
    }
}

impl Settings {
    /// The database of the worker for `domain`: its flag, or a SQLite file in the data dir.
    pub fn database_url(&self, domain: &str) -> String {
        let given = match domain {
            d if d == user::SERVICE.domain => &self.user_database_url,
            d if d == profile::SERVICE.domain => &self.profile_database_url,
            d if d == chat::SERVICE.domain => &self.chat_database_url,
            d if d == notification::SERVICE.domain => &self.notification_database_url,
            _ => &None,
        };
        given.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join(format!("{domain}.db")).display()))
    }

    pub fn nats_url(&self) -> String {
        self.nats_url.clone().unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
    }

    /// How `identity` reaches NATS: with `up`'s generated key, or the credential settings.
    pub fn nats(&self, identity: Identity) -> anyhow::Result<Nats> {
        let mut nats = match &self.nats_key_dir {
            Some(dir) => Nats::with_key(self.nats_url(), identity, dir),
            None => Nats {
                url: self.nats_url(),
                credentials: Credentials::from_settings(
                    self.nats_nkey.clone(),
                    self.nats_creds.clone(),
                    self.nats_user.clone(),
                    self.nats_password.clone(),
                )?,
                ca_file: None,
                identity: Some(identity),
            },
        };
        nats.ca_file = self.nats_ca.clone();
        Ok(nats)
    }

    pub fn jwt_secret(&self) -> anyhow::Result<String> {
        self.jwt_secret
            .clone()
            .filter(|s| !s.is_empty())
            .context("SOULCHAT_JWT_SECRET is required (only `soulchat up` generates one for development)")
    }

    pub fn gateway(&self, jwt_secret: String) -> soulchat_gateway::Config {
        soulchat_gateway::Config {
            http_addr: self.http_addr,
            jwt_secret,
            request_timeout: self.request_timeout,
            cors_origins: self.cors_origins.clone(),
            redis_url: self.redis_url.clone(),
            login_limits: soulchat_gateway::LoginLimits {
                per_account: self.login_limit_account,
                per_ip: self.login_limit_ip,
                window: self.login_limit_window,
            },
            send_limit: self.send_limit,
            socket_queue: self.socket_queue,
            admin_user_ids: self.admin_user_ids.clone(),
            rate_limits: soulchat_gateway::RateLimits {
                per_address: self.rate_limit,
                per_user: self.user_rate_limit,
                accounts: self.account_rate_limit,
            },
            connections: soulchat_gateway::ConnectionLimits {
                max: self.http_max_connections,
                per_address: self.http_max_connections_per_address,
                header_timeout: self.http_header_timeout,
                body_timeout: self.http_body_timeout,
                idle_timeout: self.http_idle_timeout,
            },
            trusted_proxies: self.trusted_proxies.clone(),
            web_dir: self.web_dir.clone(),
            attachment_max_bytes: self.attachment_max_bytes,
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.http_addr))
    }
}

/// A worker whose configuration comes from these settings.
pub trait Configured: Service {
    fn config(settings: &Settings) -> anyhow::Result<Self::Config>;
}

impl Configured for soulchat_user::Users {
    fn config(settings: &Settings) -> anyhow::Result<soulchat_user::Config> {
        Ok(soulchat_user::Config {
            tokens: soulchat_user::TokenConfig {
                jwt_secret: settings.jwt_secret()?,
                access_ttl: settings.access_token_ttl,
                refresh_ttl: settings.refresh_token_ttl,
                refresh_grace: settings.refresh_grace,
            },
            public_url: settings.public_url(),
            hashing: soulchat_user::HashPool {
                workers: settings.password_hash_workers,
                queue: settings.password_hash_queue,
            },
        })
    }
}

impl Configured for soulchat_profile::Profiles {
    fn config(settings: &Settings) -> anyhow::Result<soulchat_profile::Config> {
        Ok(soulchat_profile::Config { redis_url: settings.redis_url.clone() })
    }
}

impl Configured for soulchat_chat::Chat {
    fn config(settings: &Settings) -> anyhow::Result<soulchat_chat::Config> {
        Ok(soulchat_chat::Config {
            event_retention: settings.chat_event_retention,
            attachment_unused: settings.attachment_unused,
        })
    }
}

impl Configured for soulchat_notification::Notifications {
    fn config(settings: &Settings) -> anyhow::Result<soulchat_notification::Config> {
        Ok(soulchat_notification::Config {
            smtp_url: settings.smtp_url.clone(),
            mail_from: settings.mail_from.clone(),
            vapid_private_key: settings.vapid_private_key.clone(),
            vapid_subject: settings.vapid_subject.clone(),
            sms_url: settings.sms_url.clone(),
            sms_token: settings.sms_token.clone(),
            public_url: Some(settings.public_url()),
            delivery_attempts: Some(settings.delivery_attempts),
            retry_backoff: Some(settings.delivery_backoff),
            // Never a setting: http and loopback push endpoints are for tests (SSRF).
            allow_insecure_push: false,
        })
    }
}

/// The development secret `up` keeps in the data dir: generated once, then reused so tokens
/// survive a restart.
pub fn dev_jwt_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("jwt-secret");
    if let Some(secret) = std::fs::read_to_string(&path).ok().filter(|s| !s.trim().is_empty()) {
        return Ok(secret.trim().to_owned());
    }
    let secret: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::AdminAddr;

    #[test]
    fn the_admin_address_is_an_address_or_off() {
        assert_eq!("127.0.0.1:9464".parse::<AdminAddr>().unwrap().0, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!("off".parse::<AdminAddr>().unwrap().0, None);
        for bad in ["", "9464", "localhost:9464", "OFF"] {
            assert!(bad.parse::<AdminAddr>().is_err(), "{bad}");
        }
    }
}
