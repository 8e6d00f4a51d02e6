//! `soulchat cluster`: the production topology on one machine, for trying it and measuring it.
//! A NATS cluster, then every role as its own process (this binary), each with its own identity,
//! several gateways on consecutive ports and several replicas of every worker
//! ([`soulchat_runtime::cluster`]). Ctrl-C stops them all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use soulchat_runtime::cluster::{Cluster, Spec};
use soulchat_subjects::SERVICES;
use tokio_util::sync::CancellationToken;

use crate::settings::{Settings, dev_jwt_secret};

#[derive(Debug, Clone, Args)]
pub struct Topology {
    /// NATS nodes (JetStream on each; streams and buckets get 3 replicas from three nodes on).
    #[arg(long, default_value_t = 3)]
    nats_nodes: usize,
    /// Gateway processes, listening on the HTTP address's port and the ones after it.
    #[arg(long, default_value_t = 2)]
    gateways: u16,
    /// Processes per worker role.
    #[arg(long, default_value_t = 2)]
    worker_replicas: usize,
}

/// How long a process may take to drain on Ctrl-C before it is killed.
const GRACE: Duration = Duration::from_secs(15);

pub async fn run(settings: &Settings, topology: Topology, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(settings.nats_url.is_none(), "`soulchat cluster` starts its own NATS nodes: unset NATS_URL");
    let dir = settings.data_dir.join("cluster");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let jwt_secret = match settings.jwt_secret.clone() {
        Some(secret) => secret,
        None => dev_jwt_secret(&dir)?,
    };
    let mut env = BTreeMap::from([
        ("SOULCHAT_JWT_SECRET".to_owned(), jwt_secret),
        ("SOULCHAT_DATA_DIR".to_owned(), dir.join("data").display().to_string()),
        ("SOULCHAT_REQUEST_TIMEOUT".to_owned(), humantime::format_duration(settings.request_timeout).to_string()),
    ]);
    for def in SERVICES {
        let url = settings.database_url(def.domain);
        env.insert(format!("SOULCHAT_{}_DATABASE_URL", def.domain.to_uppercase()), url);
    }
    if let Some(redis) = &settings.redis_url {
        env.insert("REDIS_URL".to_owned(), redis.clone());
    }
    let http = settings.http_addr;
    let gateways = (0..topology.gateways).map(|n| SocketAddr::new(http.ip(), http.port() + n)).collect();
    let spec = Spec {
        binary: std::env::current_exe().context("finding this binary")?,
        dir: dir.clone(),
        nats_nodes: topology.nats_nodes,
        gateways,
        worker_replicas: topology.worker_replicas,
        env,
    };
    let mut cluster = tokio::select! {
        started = Cluster::start(spec) => started?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    println!("{}", summary(&cluster, &dir));

    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut reported = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = check.tick() => {
                for died in cluster.died() {
                    if !reported.contains(&died) {
                        tracing::error!(process = %died, "a process exited; the others go on (see its log)");
                        reported.push(died);
                    }
                }
            }
        }
    }
    println!("stopping (each process drains for up to {GRACE:?})");
    cluster.stop(GRACE).await
}

/// Where everything is, for the person who started it.
fn summary(cluster: &Cluster, dir: &std::path::Path) -> String {
    let mut lines = vec![format!("NATS: {}", cluster.nats_url())];
    for process in &cluster.processes {
        let http = process.http.map(|a| format!("  http://{a}")).unwrap_or_default();
        lines.push(format!("{:<16} admin http://{}{http}", process.name, process.admin));
    }
    lines.push(format!("logs: {}/logs  NATS seeds: {}", dir.display(), cluster.keys.display()));
    lines.push("Ctrl-C stops everything.".to_owned());
    lines.join("\n")
}
