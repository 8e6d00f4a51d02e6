//! Joining the mesh: one way for every role to connect to NATS.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::broker::Identity;
use crate::metrics::{self, Disruption};

/// The oldest nats-server SoulChat runs on: 2.9 cannot serve JetStream KV to current clients.
pub const MIN_SERVER_VERSION: semver::Version = semver::Version::new(2, 10, 0);

/// A secret setting: never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// How a role proves its identity to NATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// None: only for a server without authentication.
    #[default]
    Anonymous,
    /// An NKey seed file (`<name>.nk`, as `soulchat up` generates).
    Nkey(PathBuf),
    /// A JWT `.creds` file, for operator/account deployments.
    Creds(PathBuf),
    UserPassword {
        user: String,
        password: Secret,
    },
}

impl Credentials {
    /// From the settings (`--nats-nkey`, `--nats-creds`, `--nats-user` with `--nats-password`):
    /// at most one kind.
    pub fn from_settings(
        nkey: Option<PathBuf>,
        creds: Option<PathBuf>,
        user: Option<String>,
        password: Option<Secret>,
    ) -> anyhow::Result<Credentials> {
        match (nkey, creds, user, password) {
            (None, None, None, None) => Ok(Credentials::Anonymous),
            (Some(path), None, None, None) => Ok(Credentials::Nkey(path)),
            (None, Some(path), None, None) => Ok(Credentials::Creds(path)),
            (None, None, Some(user), Some(password)) => Ok(Credentials::UserPassword { user, password }),
            (None, None, Some(_), None) | (None, None, None, Some(_)) => {
                bail!("SOULCHAT_NATS_USER and SOULCHAT_NATS_PASSWORD go together")
            }
            _ => bail!(
                "give one kind of NATS credentials: SOULCHAT_NATS_NKEY, SOULCHAT_NATS_CREDS, or SOULCHAT_NATS_USER and SOULCHAT_NATS_PASSWORD"
            ),
        }
    }
}

/// Where and as whom a role connects.
#[derive(Debug, Clone)]
pub struct Nats {
    /// `nats://` or `tls://` URLs, comma-separated; never with credentials in them.
    pub url: String,
    pub credentials: Credentials,
    /// A CA certificate (PEM) the server's TLS certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Whose inbox prefix it uses (`_INBOX_<name>`, the only one its permissions let it read);
    /// `None`: the default `_INBOX`, for a server without permissions.
    pub identity: Option<Identity>,
}

impl Nats {
    /// A server without authentication.
    pub fn anonymous(url: impl Into<String>) -> Nats {
        Nats { url: url.into(), credentials: Credentials::Anonymous, ca_file: None, identity: None }
    }

    /// As `identity`, with its NKey seed from a key directory (`<dir>/<name>.nk`).
    pub fn with_key(url: impl Into<String>, identity: Identity, key_dir: &std::path::Path) -> Nats {
        Nats {
            url: url.into(),
            credentials: Credentials::Nkey(identity.seed_file(key_dir)),
            ca_file: None,
            identity: Some(identity),
        }
    }
}

impl From<&str> for Nats {
    fn from(url: &str) -> Nats {
        Nats::anonymous(url)
    }
}

impl From<&String> for Nats {
    fn from(url: &String) -> Nats {
        Nats::anonymous(url.as_str())
    }
}

/// Refuses a URL with a user, password or token in it: secrets belong in their own settings,
/// and a URL ends up in logs and error messages.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    for server in url.split(',') {
        let server = server.trim();
        let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
        if let Some((_, host)) = rest.split('/').next().unwrap_or_default().rsplit_once('@') {
            bail!(
                "NATS_URL must not carry credentials (a server given as …@{host}): use SOULCHAT_NATS_NKEY, \
                 SOULCHAT_NATS_CREDS, or SOULCHAT_NATS_USER and SOULCHAT_NATS_PASSWORD"
            );
        }
    }
    Ok(())
}

/// The options every connection shares: credentials, TLS and the inbox prefix.
pub async fn options(nats: &Nats) -> anyhow::Result<async_nats::ConnectOptions> {
    check_url(&nats.url)?;
    let mut options = async_nats::ConnectOptions::new();
    options = match &nats.credentials {
        Credentials::Anonymous => options,
        Credentials::Nkey(path) => {
            let seed =
                std::fs::read_to_string(path).with_context(|| format!("reading the NKey seed {}", path.display()))?;
            nkeys::KeyPair::from_seed(seed.trim()).with_context(|| format!("{} holds no NKey seed", path.display()))?;
            options.nkey(seed.trim().to_owned())
        }
        Credentials::Creds(path) => options
            .credentials_file(path)
            .await
            .with_context(|| format!("reading the NATS credentials {}", path.display()))?,
        Credentials::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
    };
    if let Some(ca) = &nats.ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some(identity) = nats.identity {
        options = options.custom_inbox_prefix(identity.inbox_prefix());
    }
    Ok(options)
}

/// Connects with retry and backoff (also for the first connection, so a role may start before
/// the server), keeps reconnecting forever, and refuses a server older than 2.10. Refused
/// credentials end it at once.
pub async fn connect(nats: impl Into<Nats>, name: &str) -> anyhow::Result<async_nats::Client> {
    Ok(connect_observed(nats, name).await?.0)
}

/// Counts the moments core-NATS messages may have been lost: every reconnect and every
/// slow-consumer drop. A holder of live state (the gateway's sockets) compares counts to know
/// it must repair.
pub type Disruptions = tokio::sync::watch::Receiver<u64>;

/// [`connect`], also reporting [`Disruptions`].
pub async fn connect_observed(nats: impl Into<Nats>, name: &str) -> anyhow::Result<(async_nats::Client, Disruptions)> {
    let nats = nats.into();
    let url = nats.url.clone();
    let (disrupted, disruptions) = tokio::sync::watch::channel(0u64);
    // The first `Connected` is the start, not a disruption.
    let connected_before = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let refusal = refused.clone();
    let client = options(&nats)
        .await?
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis((100 * 2u64.saturating_pow(attempt.min(6) as u32)).min(5_000))
        })
        .event_callback(move |event| {
            let disrupted = disrupted.clone();
            let connected_before = connected_before.clone();
            let refusal = refusal.clone();
            async move {
                let reconnected = matches!(event, async_nats::Event::Connected)
                    && connected_before.swap(true, std::sync::atomic::Ordering::SeqCst);
                match event {
                    _ if reconnected => {
                        tracing::info!(%event, "nats connection event: live messages may have been lost");
                        metrics::nats_disrupted(Disruption::Reconnected);
                        disrupted.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        tracing::info!(%event, "nats connection event: live messages may have been lost");
                        metrics::nats_disrupted(Disruption::SlowConsumer);
                        disrupted.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => {
                        tracing::info!(%event, "nats connection event");
                        metrics::nats_disrupted(Disruption::Disconnected);
                    }
                    async_nats::Event::ServerError(async_nats::ServerError::AuthorizationViolation) => {
                        *refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(event.to_string());
                    }
                    async_nats::Event::ServerError(_) => tracing::warn!(%event, "nats server error"),
                    _ => tracing::debug!(%event, "nats connection event"),
                }
            }
        })
        // A cluster is a comma-separated list; the client takes one server per entry.
        .connect(url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    metrics::zero::nats();
    // `retry_on_initial_connect` returns before the handshake; wait for it to learn the version.
    let mut waited = Duration::ZERO;
    while client.connection_state() != async_nats::connection::State::Connected
        || client.server_info().version.is_empty()
    {
        if let Some(refusal) = refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bail!(
                "NATS at {url} refused {name}'s credentials ({refusal}): check SOULCHAT_NATS_NKEY, _CREDS or _USER/_PASSWORD"
            );
        }
        if waited > Duration::from_secs(30) {
            bail!("no NATS server answered at {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    check_version(&client.server_info().version).with_context(|| {
        format!(
            "the NATS server at {url} cannot serve SoulChat (install the pinned release with \
             `scripts/install-nats-server`, or point NATS_URL at a newer server)"
        )
    })?;
    Ok((client, disruptions))
}

pub fn check_version(version: &str) -> anyhow::Result<()> {
    let parsed = semver::Version::parse(version.trim_start_matches('v'))
        .with_context(|| format!("unreadable nats-server version {version:?}"))?;
    if parsed < MIN_SERVER_VERSION {
        bail!("nats-server {version} is too old: SoulChat needs {MIN_SERVER_VERSION} or newer (JetStream KV)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Credentials, check_url, check_version};

    #[test]
    fn refuses_servers_older_than_2_10() {
        assert!(check_version("2.9.10").is_err());
        assert!(check_version("2.10.0").is_ok());
        assert!(check_version("2.12.8").is_ok());
        assert!(check_version("nonsense").is_err());
    }

    #[test]
    fn refuses_credentials_in_urls_without_printing_them() {
        assert!(check_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_url("tls://nats-1:4222,tls://nats-2:4222").is_ok());
        for url in ["nats://admin:hunter2@127.0.0.1:4222", "nats://a:4222,nats://s3cr3t@b:4222"] {
            let error = format!("{:#}", check_url(url).unwrap_err());
            assert!(!error.contains("hunter2") && !error.contains("s3cr3t"), "{error}");
        }
    }

    #[test]
    fn one_kind_of_credentials() {
        assert_eq!(Credentials::from_settings(None, None, None, None).unwrap(), Credentials::Anonymous);
        assert!(Credentials::from_settings(Some("a.nk".into()), Some("a.creds".into()), None, None).is_err());
        assert!(Credentials::from_settings(None, None, Some("gateway".into()), None).is_err());
        let password = "p".parse().unwrap();
        let both = Credentials::from_settings(None, None, Some("gateway".into()), Some(password)).unwrap();
        assert!(!format!("{both:?}").contains("\"p\""));
    }
}
