//! Joining the mesh: one way for every role to connect to NATS.

use std::time::Duration;

use anyhow::{Context, bail};

/// The oldest nats-server SoulChat runs on: 2.9 cannot serve JetStream KV to current clients.
pub const MIN_SERVER_VERSION: semver::Version = semver::Version::new(2, 10, 0);

/// Connects with retry and backoff (also for the first connection, so a role may start before
/// the server), keeps reconnecting forever, and refuses a server older than 2.10.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis((100 * 2u64.saturating_pow(attempt.min(6) as u32)).min(5_000))
        })
        .event_callback(|event| async move {
            tracing::debug!(%event, "nats connection event");
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    // `retry_on_initial_connect` returns before the handshake; wait for it to learn the version.
    let mut waited = Duration::ZERO;
    while client.connection_state() != async_nats::connection::State::Connected
        || client.server_info().version.is_empty()
    {
        if waited > Duration::from_secs(30) {
            bail!("no NATS server answered at {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    check_version(&client.server_info().version)?;
    Ok(client)
}

pub fn check_version(version: &str) -> anyhow::Result<()> {
    let parsed = semver::Version::parse(version.trim_start_matches('v'))
        .with_context(|| format!("unreadable nats-server version {version:?}"))?;
    if parsed < MIN_SERVER_VERSION {
        bail!(
            "nats-server {version} is too old: SoulChat needs {MIN_SERVER_VERSION} or newer \
             (JetStream KV). Install the pinned release with `scripts/install-nats-server` \
             or point NATS_URL at a newer server."
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_version;

    #[test]
    fn refuses_servers_older_than_2_10() {
        assert!(check_version("2.9.10").is_err());
        assert!(check_version("2.10.0").is_ok());
        assert!(check_version("2.12.8").is_ok());
        assert!(check_version("nonsense").is_err());
    }
}
