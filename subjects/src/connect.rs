//! Joining the mesh: one way for every role to connect to NATS.

use std::time::Duration;

use anyhow::{Context, bail};

/// The oldest nats-server SoulChat runs on: 2.9 cannot serve JetStream KV to current clients.
pub const MIN_SERVER_VERSION: semver::Version = semver::Version::new(2, 10, 0);

/// Connects with retry and backoff (also for the first connection, so a role may start before
/// the server), keeps reconnecting forever, and refuses a server older than 2.10.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    Ok(connect_observed(url, name).await?.0)
}

/// Counts the moments core-NATS messages may have been lost: every reconnect and every
/// slow-consumer drop. A holder of live state (the gateway's sockets) compares counts to know
/// it must repair.
pub type Disruptions = tokio::sync::watch::Receiver<u64>;

/// [`connect`], also reporting [`Disruptions`].
pub async fn connect_observed(url: &str, name: &str) -> anyhow::Result<(async_nats::Client, Disruptions)> {
    let (disrupted, disruptions) = tokio::sync::watch::channel(0u64);
    // The first `Connected` is the start, not a disruption.
    let connected_before = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis((100 * 2u64.saturating_pow(attempt.min(6) as u32)).min(5_000))
        })
        .event_callback(move |event| {
            let disrupted = disrupted.clone();
            let connected_before = connected_before.clone();
            async move {
                let reconnected = matches!(event, async_nats::Event::Connected)
                    && connected_before.swap(true, std::sync::atomic::Ordering::SeqCst);
                match event {
                    _ if reconnected => {
                        tracing::info!(%event, "nats connection event: live messages may have been lost");
                        disrupted.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        tracing::info!(%event, "nats connection event: live messages may have been lost");
                        disrupted.send_modify(|n| *n += 1);
                    }
                    _ => tracing::debug!(%event, "nats connection event"),
                }
            }
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
    Ok((client, disruptions))
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
