//! SoulChat spread over processes on one machine, as it runs on many: a NATS cluster (each node
//! with JetStream, routes between them, the contract's permissions), then every role as its own
//! `soulchat` process with its own identity, several replicas each. `soulchat cluster` runs it
//! for people; the fault tests run it to kill, stop and restart its parts.
//!
//! Each process's stderr goes to `<dir>/logs/<name>.log`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use soulchat_subjects::broker::Identity;
use soulchat_subjects::{SERVICES, ServiceDef};

use crate::nats_server::{NatsServer, free_port, secured_config};

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The `soulchat` binary.
    pub binary: PathBuf,
    /// Stores, keys, logs and (by default) SQLite files.
    pub dir: PathBuf,
    pub nats_nodes: usize,
    /// The gateways' HTTP addresses, one process each.
    pub gateways: Vec<SocketAddr>,
    /// Processes per worker role.
    pub worker_replicas: usize,
    /// Variables every process gets beside the launcher's own environment: database URLs,
    /// `REDIS_URL`, the JWT secret, timeouts...
    pub env: BTreeMap<String, String>,
}

/// A `soulchat` process.
pub struct Process {
    /// `gateway-1`, `chat-2`...
    pub name: String,
    /// Its admin listener (`/metrics`, `/readyz`).
    pub admin: SocketAddr,
    /// The gateway's HTTP address; none for a worker.
    pub http: Option<SocketAddr>,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    log: PathBuf,
    binary: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Process {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = tokio::process::Command::new(&self.binary)
            .args(&self.command)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> anyhow::Result<rustix::process::Pid> {
        let id = self.child.as_ref().and_then(|c| c.id()).with_context(|| format!("{} is not running", self.name))?;
        rustix::process::Pid::from_raw(id as i32).context("a process id")
    }

    fn signal(&self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        rustix::process::kill_process(self.pid()?, signal).with_context(|| format!("signalling {}", self.name))
    }

    /// `kill -9`: no shutdown, no drain.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `grace` for it to exit (killed after that).
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        self.signal(rustix::process::Signal::TERM)?;
        let mut child = self.child.take().expect("checked above");
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::warn!(process = %self.name, "did not stop within {grace:?}: killed");
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGSTOP: the process holds its connections but does nothing.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(rustix::process::Signal::STOP)
    }

    /// SIGCONT after [`Process::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(rustix::process::Signal::CONT)
    }

    /// Starts it again (after a kill), with the same settings and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is still running", self.name);
        }
        self.spawn()
    }

    /// Whether it has exited, and how (none while it runs or after a kill the caller asked for).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until its admin listener says ready.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Some(status) = self.exited() {
                // The test's directory (and so the log) is gone by the time anyone reads the error.
                let log = self.log();
                let tail = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>();
                bail!("{} exited ({status}) before it was ready; its log ends:\n{}", self.name, tail.join("\n"));
            }
            if ready(&url).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {within:?}; see {}", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `GET /readyz` answers 200.
async fn ready(url: &str) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build();
    match client {
        Ok(client) => client.get(url).send().await.is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}

/// A running cluster: its NATS nodes and its processes, all stopped when dropped.
pub struct Cluster {
    pub nats: Vec<NatsServer>,
    pub processes: Vec<Process>,
    /// Each identity's NKey seed file is `<keys>/<name>.nk`.
    pub keys: PathBuf,
}

impl Cluster {
    /// Starts the NATS nodes, provisions and migrates (`soulchat migrate`, as admin), then every
    /// role, and waits until each process is ready.
    pub async fn start(spec: Spec) -> anyhow::Result<Cluster> {
        let keys = spec.dir.join("keys");
        let logs = spec.dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let nats = start_nats(&spec.dir, &keys, spec.nats_nodes).await?;
        let nats_url = nats.iter().map(NatsServer::url).collect::<Vec<_>>().join(",");

        let mut base = spec.env.clone();
        base.insert("NATS_URL".into(), nats_url);
        base.entry("SOULCHAT_DATA_DIR".into()).or_insert_with(|| spec.dir.join("data").display().to_string());
        let process = |name: String, command: Vec<String>, identity: Identity, http: Option<SocketAddr>| {
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut env = base.clone();
            env.insert("SOULCHAT_NATS_NKEY".into(), identity.seed_file(&keys).display().to_string());
            env.insert("SOULCHAT_METRICS_ADDR".into(), admin.to_string());
            if let Some(http) = http {
                env.insert("SOULCHAT_HTTP_ADDR".into(), http.to_string());
            }
            let log = logs.join(format!("{name}.log"));
            anyhow::Ok(Process { name, admin, http, command, env, log, binary: spec.binary.clone(), child: None })
        };

        let mut migrate = process("migrate".into(), vec!["migrate".into()], Identity::Admin, None)?;
        migrate.spawn()?;
        let status = migrate.child.as_mut().expect("just spawned").wait().await?;
        if !status.success() {
            bail!("`soulchat migrate` failed ({status}):\n{}", migrate.log());
        }

        let mut processes = Vec::new();
        for (n, http) in spec.gateways.iter().enumerate() {
            processes.push(process(
                format!("gateway-{}", n + 1),
                vec!["gateway".into()],
                Identity::Gateway,
                Some(*http),
            )?);
        }
        for def in SERVICES {
            for n in 1..=spec.worker_replicas {
                let identity = worker_identity(def)?;
                let command = vec!["worker".into(), def.domain.into()];
                processes.push(process(format!("{}-{n}", def.domain), command, identity, None)?);
            }
        }
        let mut cluster = Cluster { nats, processes, keys };
        for process in &mut cluster.processes {
            process.spawn()?;
        }
        for process in &mut cluster.processes {
            process.wait_ready(Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    /// The process called `name` (`gateway-1`, `chat-2`).
    pub fn process(&mut self, name: &str) -> &mut Process {
        self.processes.iter_mut().find(|p| p.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Every node's client URL, comma-separated (a `NATS_URL`).
    pub fn nats_url(&self) -> String {
        self.nats.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// The processes that exited without being asked to.
    pub fn died(&mut self) -> Vec<String> {
        self.processes.iter_mut().filter_map(|p| p.exited().map(|status| format!("{} ({status})", p.name))).collect()
    }

    /// Stops every process (SIGTERM, `grace` each, in parallel), then the NATS nodes.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        let stops = self.processes.iter_mut().map(|p| p.terminate(grace));
        for result in futures::future::join_all(stops).await {
            if let Err(e) = result {
                tracing::warn!("{e:#}");
            }
        }
        for node in &mut self.nats {
            node.stop().await?;
        }
        Ok(())
    }
}

fn worker_identity(def: ServiceDef) -> anyhow::Result<Identity> {
    Identity::worker(def).with_context(|| format!("no NATS identity for {}", def.name))
}

/// `count` nats-servers on loopback, routed to each other, JetStream on each, with the
/// contract's identities and permissions (the seeds in `keys`).
async fn start_nats(dir: &Path, keys: &Path, count: usize) -> anyhow::Result<Vec<NatsServer>> {
    let ports: Vec<(u16, u16)> = (0..count).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
    let authorization = secured_config(keys, "")?;
    let mut starting = Vec::new();
    for (n, (client, route)) in ports.iter().enumerate() {
        let mut config = format!("server_name: n{}\n{authorization}", n + 1);
        if count > 1 {
            let routes: Vec<String> = ports
                .iter()
                .filter(|(_, other)| other != route)
                .map(|(_, other)| format!("nats-route://127.0.0.1:{other}"))
                .collect();
            config.push_str(&format!(
                "\ncluster {{\n  name: soulchat\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        let store = dir.join(format!("nats-{}", n + 1));
        let client = *client;
        starting.push(async move { NatsServer::start_with(&store, Some(client), Some(config)).await });
    }
    // Together: a clustered JetStream waits for its peers before it serves.
    let nodes = futures::future::try_join_all(starting).await?;
    wait_for_jetstream(&nodes, keys).await?;
    Ok(nodes)
}

/// JetStream answers once the nodes have elected a meta leader.
async fn wait_for_jetstream(nodes: &[NatsServer], keys: &Path) -> anyhow::Result<()> {
    let url = nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",");
    let nats = soulchat_subjects::connect::Nats::with_key(url, Identity::Admin, keys);
    let client = soulchat_subjects::connect::connect(nats, "soulchat-cluster").await?;
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = js.query_account().await {
        if Instant::now() > deadline {
            bail!("JetStream did not come up on the cluster within 30 s: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.drain().await.ok();
    Ok(())
}
