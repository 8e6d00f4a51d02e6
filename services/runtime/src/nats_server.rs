//! Finding and running the pinned nats-server: `soulchat up` starts one as a child when no
//! `NATS_URL` is given, and the test harness starts a private one per test.
//!
//! Lookup order: `SOULCHAT_NATS_SERVER`, then the project's pinned install
//! (`.tools/nats-server/bin/nats-server`, from `scripts/install-nats-server`), then a
//! `nats-server` on PATH that passes the version check. Debian's 2.9 is refused: it cannot serve
//! JetStream KV to current clients.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use soulchat_subjects::broker;
use soulchat_subjects::connect::check_version;

const PINNED: &str = ".tools/nats-server/bin/nats-server";

/// The nats-server binary to start, or an error that says what to install.
pub fn locate() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SOULCHAT_NATS_SERVER") {
        let path = PathBuf::from(path);
        version_of(&path).with_context(|| format!("SOULCHAT_NATS_SERVER={}", path.display()))?;
        return Ok(path);
    }
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(PINNED);
    for candidate in [PathBuf::from(PINNED), in_checkout] {
        if candidate.is_file() && version_of(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    let on_path = PathBuf::from("nats-server");
    match version_of(&on_path) {
        Ok(_) => Ok(on_path),
        Err(e) => bail!(
            "no usable nats-server: {e:#}. Install the pinned release with \
             `scripts/install-nats-server`, set SOULCHAT_NATS_SERVER to a nats-server ≥ 2.10, \
             or set NATS_URL to a running server"
        ),
    }
}

/// Runs `<binary> --version` and checks it is at least 2.10.
fn version_of(binary: &Path) -> anyhow::Result<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit(' ').next().unwrap_or("").trim_start_matches('v').to_owned();
    check_version(&version).with_context(|| format!("{} reports {:?}", binary.display(), text.trim()))?;
    Ok(version)
}

/// A nats-server child process with JetStream. Killed when dropped.
pub struct NatsServer {
    child: tokio::process::Child,
    binary: PathBuf,
    store: PathBuf,
    config: Option<PathBuf>,
    port: u16,
}

/// The configuration of a server with authentication on: one NKey per identity, generated into
/// `key_dir` (`<name>.nk`, mode 0600) unless there already, and the permissions the contract
/// gives each ([`soulchat_subjects::broker`]); `extra` is appended (a `tls {}` block, say).
pub fn secured_config(key_dir: &Path, extra: &str) -> anyhow::Result<String> {
    let users = broker::ensure_keys(key_dir)?;
    Ok(format!("{}{extra}", broker::authorization(&users)))
}

impl NatsServer {
    /// Starts the located binary on `port` (or 4222 when free, else any free port) with its
    /// JetStream store under `store`, without authentication, and waits until it accepts
    /// connections.
    pub async fn start(store: &Path, port: Option<u16>) -> anyhow::Result<NatsServer> {
        Self::start_with(store, port, None).await
    }

    /// [`NatsServer::start`] with a configuration file's contents (kept as `<store>/server.conf`),
    /// e.g. [`secured_config`].
    pub async fn start_with(store: &Path, port: Option<u16>, config: Option<String>) -> anyhow::Result<NatsServer> {
        let binary = locate()?;
        let port = match port {
            Some(p) => p,
            None if port_is_free(4222) => 4222,
            None => free_port()?,
        };
        std::fs::create_dir_all(store).with_context(|| format!("creating {}", store.display()))?;
        let config = match config {
            Some(text) => {
                let path = store.join("server.conf");
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        Self::spawn(binary, store.to_owned(), config, port).await
    }

    async fn spawn(binary: PathBuf, store: PathBuf, config: Option<PathBuf>, port: u16) -> anyhow::Result<NatsServer> {
        std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
        let log = std::fs::File::create(store.join("nats-server.log"))?;
        let mut command = tokio::process::Command::new(&binary);
        if let Some(config) = &config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = NatsServer { child, binary, store, config, port };
        server.wait_ready().await?;
        tracing::info!(url = %server.url(), "nats-server child started");
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let log = std::fs::read_to_string(self.store.join("nats-server.log")).unwrap_or_default();
        bail!("nats-server did not accept connections on port {} within 15 s:\n{log}", self.port)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server has logged since it (re)started: permissions violations show up here.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.join("nats-server.log")).unwrap_or_default()
    }

    /// Stops the server (clients see the connection drop).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("stopping nats-server")?;
        Ok(())
    }

    /// Starts the server again on the same port and store, as after a crash or a restart.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let fresh = Self::spawn(self.binary.clone(), self.store.clone(), self.config.clone(), self.port).await?;
        *self = fresh;
        Ok(())
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port that is free now, for a process that binds it later (and again after a restart).
///
/// Chosen below Linux's ephemeral range (32768-60999), not by `bind(0)`: outgoing connections
/// and `bind(0)` take their ports from that range, so under load one of them could take a port
/// `bind(0)` just handed back before its process bound it. Never the same port twice per process.
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..1_000 {
        let port = rand::random_range(20_000..32_000);
        if !given.contains(&port) && port_is_free(port) {
            given.insert(port);
            return Ok(port);
        }
    }
    bail!("no free port found in 20000-31999")
}
