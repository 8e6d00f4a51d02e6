//! Idle authenticated WebSockets on one gateway, and what each costs it: the growth of the
//! gateway's resident memory (`/proc/<pid>/status`) over the number of sockets. The client side
//! has two limits of its own to pass: ports, by spreading sockets over several 127.0.0.x source
//! addresses, and open files, by raising its soft limit to the hard one and staying under it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;

use crate::api::{Api, run_prefix};
use crate::progress::Progress;
use crate::report::{Check, Figure, Report};
use crate::socket::{Target, connect};

/// Files the tool keeps for itself beyond its sockets: the runtime, HTTP and NATS connections.
const SPARE_FILES: u64 = 100;
/// Idle sockets read only small frames (presence); the buffer grows for a larger one.
const READ_BUFFER: usize = 2048;

#[derive(Debug, Serialize, clap::Args)]
pub struct Options {
    /// Sockets to open (fewer if this process's open-files hard limit does not allow it; it says so).
    #[arg(long, default_value_t = 18_000)]
    sockets: u64,
    /// Accounts the sockets are spread over (each costs an argon2 hash, so not one per socket).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Source addresses 127.0.0.1..=127.0.0.N the client ports are spread over.
    #[arg(long, default_value_t = 8)]
    source_addresses: u8,
    /// The gateway's process id; by default the process listening on the --api port.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Upgrades in flight at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Seconds to wait, every socket open, before reading the gateway's memory.
    #[arg(long, default_value_t = 3.0)]
    settle_seconds: f64,
}

pub async fn run(api: &str, options: &Options) -> anyhow::Result<Report> {
    let target = Target::resolve(api).await?;
    let pid = match options.gateway_pid {
        Some(pid) => pid,
        None => listener(target.addr.port())?,
    };
    let mut report = Report::new("connections", serde_json::to_value(options)?);
    // The program and its subcommand only: later arguments may carry secrets (--jwt-secret).
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split('\0');
    let program = args.next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
    let command = format!("{program} {}", args.next().unwrap_or_default());
    report.notes.push(format!("gateway: process {pid} ({}), {}", command.trim(), open_files_limit(pid)));
    // RSS grows only by pages the process had not touched yet: memory freed by earlier load is reused.
    report.notes.push(
        "RSS growth counts only memory the process had not used before: measure a freshly started gateway, best \
         `soulchat gateway` as its own process (`soulchat up` also holds the workers and their argon2 memory)"
            .into(),
    );

    // Sockets are files: raise the soft limit to the hard one and stay under it.
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising the open-files limit")?;
    let open_now = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    let budget = limit.saturating_sub(open_now + SPARE_FILES);
    let sockets = options.sockets.min(budget);
    if sockets < options.sockets {
        report.notes.push(format!(
            "asked for {} sockets, opened at most {sockets}: this process may hold {limit} open files (its hard \
             limit). For more, run a second `soulchat-bench connections` process at the same time",
            options.sockets
        ));
    }

    let client = Api::new(api, 4)?;
    let users = client.accounts(&run_prefix(), options.users.max(1), 4).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid)?;

    let (opened, failed, live) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let shown = (opened.clone(), failed.clone(), live.clone());
    let progress = Progress::start("connections", move || {
        let rss = rss_kib(pid).map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0)).unwrap_or_else(|e| e.to_string());
        format!(
            "{} opened, {} failed, {} open; gateway RSS {rss}",
            shown.0.load(Ordering::Relaxed),
            shown.1.load(Ordering::Relaxed),
            shown.2.load(Ordering::Relaxed)
        )
    });
    let loopback = matches!(target.addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
    let started = Instant::now();
    let mut first_failure = None;
    let mut holders = Vec::with_capacity(sockets as usize);
    let mut upgrades = futures::stream::iter(0..sockets)
        .map(|i| {
            let source = loopback.then(|| {
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % u64::from(options.source_addresses.max(1))) as u8))
            });
            let token = &users[i as usize % users.len()].token;
            connect(&target, token, source, READ_BUFFER)
        })
        .buffer_unordered(options.parallel.max(1));
    while let Some(upgrade) = upgrades.next().await {
        match upgrade {
            Ok(mut ws) => {
                opened.fetch_add(1, Ordering::Relaxed);
                live.fetch_add(1, Ordering::Relaxed);
                let live = live.clone();
                // Reading keeps the socket answering pings; the frames themselves are not needed.
                holders.push(tokio::spawn(async move {
                    while let Some(Ok(_)) = ws.next().await {}
                    live.fetch_sub(1, Ordering::Relaxed);
                }));
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                first_failure.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(options.settle_seconds)).await;
    let with_sockets = rss_kib(pid)?;
    let open = live.load(Ordering::Relaxed);
    let tool = rss_kib(std::process::id())?;
    for holder in &holders {
        holder.abort();
    }
    drop(holders);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    drop(progress);

    let opened = opened.load(Ordering::Relaxed);
    let per_socket = if open > 0 { with_sockets.saturating_sub(before) as f64 / open as f64 } else { 0.0 };
    report.figures.extend([
        Figure::new("sockets open at the measurement", open as f64, "sockets"),
        Figure::new("gateway memory per socket", per_socket, "KiB"),
        Figure::new("gateway RSS before", before as f64 / 1024.0, "MiB"),
        Figure::new("gateway RSS with the sockets", with_sockets as f64 / 1024.0, "MiB"),
        Figure::new("gateway RSS 2 s after closing them", after as f64 / 1024.0, "MiB"),
        Figure::new("upgrades per second", opened as f64 / connect_seconds, "sockets/s"),
        Figure::new("this tool's RSS with the sockets", tool as f64 / 1024.0, "MiB"),
    ]);
    report.checks.push(Check {
        name: "every socket opened and stayed open",
        passed: opened == sockets && open == sockets,
        detail: match first_failure {
            Some(e) => format!("{opened} of {sockets} opened, {open} still open; first failure: {e}"),
            None => format!("{opened} of {sockets} opened, {open} still open"),
        },
    });
    report.notes.push(format!(
        "{sockets} sockets over {} accounts from {} source addresses; memory per socket = (RSS with the sockets - RSS \
         before) / sockets open",
        users.len(),
        if loopback { options.source_addresses.max(1) } else { 1 }
    ));
    Ok(report)
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The process's "Max open files" line, for the report: the gateway needs one file per socket.
fn open_files_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    match limits.lines().find(|l| l.starts_with("Max open files")).map(|l| l.split_whitespace().collect::<Vec<_>>()) {
        Some(fields) if fields.len() >= 5 => format!("open files soft limit {}, hard limit {}", fields[3], fields[4]),
        _ => "open-files limit unknown".into(),
    }
}

/// The process listening on `port` over TCP: its socket's inode from /proc/net/tcp{,6}, then the
/// process holding that inode.
fn listener(port: u16) -> anyhow::Result<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            let local_port =
                fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if listening && local_port == Some(port) {
                inodes.extend(fields.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    if inodes.is_empty() {
        bail!("nothing listens on port {port}: is the system up? (or pass --gateway-pid)");
    }
    for process in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = process.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str())) {
                return Ok(pid);
            }
        }
    }
    bail!("could not find the process listening on port {port}; pass --gateway-pid")
}
