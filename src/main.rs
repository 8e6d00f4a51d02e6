//! The `soulchat` command: runs one role per process (`gateway`, `worker <domain>`), all of them
//! in one process (`up`), each in its own process beside a NATS cluster (`cluster`), the provisioning and migrations (`migrate`), prints the audit log
//! (`audit`) or the broker's permissions (`nats-config`). It only wires roles together; each
//! role lives in its own crate and talks to the others over NATS alone. (The load tool is a
//! binary of its own, `soulchat-bench`, so that production builds do not carry it.)

mod cluster;
#[cfg(test)]
mod deploy_check;
mod settings;
mod up;

/// Every role holds many small, long-lived allocations (sockets, sessions, queues) beside
/// short-lived request buffers; mimalloc keeps the two from fragmenting each other, so idle
/// sockets cost less resident memory than with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use settings::Settings;
use soulchat_runtime::telemetry;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "soulchat", version, about = "SoulChat: a chat and social backend as a NATS mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// The gateway and every worker in one process, with its own nats-server unless NATS_URL is set.
    Up,
    /// A NATS cluster and every role as its own process, with replicas (the production topology
    /// on one machine), until Ctrl-C.
    Cluster(cluster::Topology),
    /// The HTTP and WebSocket edge.
    Gateway,
    /// One domain worker.
    Worker {
        #[arg(value_parser = soulchat_subjects::SERVICES.map(|s| s.domain))]
        domain: String,
    },
    /// Provisions the NATS streams and buckets (as admin) and applies every service's pending
    /// migrations, then exits.
    Migrate,
    /// Prints the audit log (security events), oldest first, as `admin`.
    Audit {
        /// Only events about this user (username or id).
        #[arg(long)]
        user: Option<String>,
        /// Only this kind: registered, login_succeeded, login_failed, logged_out, ...
        #[arg(long)]
        kind: Option<String>,
        /// Only events of the last DURATION (`1h`, `7days`). Default: all that are kept.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Prints the nats-server `authorization` block generated from the contract (nats/authorization.conf).
    NatsConfig,
    /// Makes (or keeps) one NKey seed per identity in DIR (`<name>.nk`, mode 0600) and prints the
    /// nats-server's environment: `export SOULCHAT_NATS_<NAME>_NKEY=<public key>`.
    NatsKeys { dir: std::path::PathBuf },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let telemetry = match install_telemetry(&cli) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("soulchat: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = match cli.command {
        Command::Up => up::run(cli.settings, shutdown).await,
        Command::Cluster(topology) => cluster::run(&cli.settings, topology, shutdown).await,
        Command::Gateway => up::gateway(&cli.settings, shutdown).await,
        Command::Worker { domain } => up::worker(&cli.settings, &domain, shutdown).await,
        Command::Migrate => up::migrate(&cli.settings).await,
        Command::Audit { user, kind, since } => {
            let since = since.map(|ago| std::time::SystemTime::now().checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH));
            up::audit(&cli.settings, &soulchat_subjects::audit::Filter { since, kind, user }).await
        }
        Command::NatsConfig => print(&soulchat_subjects::broker::committed_authorization()),
        Command::NatsKeys { dir } => soulchat_subjects::broker::ensure_keys(&dir).and_then(|keys| {
            let exports: String = keys
                .into_iter()
                .map(|(identity, public)| format!("export {}={}\n", identity.key_variable(), public.trim_matches('"')))
                .collect();
            print(&exports)
        }),
    };
    // Buffered spans go out before the process does.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soulchat: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines as `SOULCHAT_LOG_FORMAT` says; spans exported when an OTLP endpoint is set, as the
/// service the command runs (`up` runs them all in one process: `soulchat`).
fn install_telemetry(cli: &Cli) -> anyhow::Result<telemetry::Telemetry> {
    let service = match &cli.command {
        Command::Up => Some("soulchat".to_owned()),
        Command::Gateway => Some("soulchat-gateway".to_owned()),
        Command::Worker { domain } => Some(format!("soulchat-{domain}")),
        Command::Cluster(_)
        | Command::Migrate
        | Command::Audit { .. }
        | Command::NatsConfig
        | Command::NatsKeys { .. } => None,
    };
    let export = match service {
        Some(service) => telemetry::Export::from_env(&service)?,
        None => None,
    };
    telemetry::install(cli.settings.log_format.unwrap_or_else(telemetry::LogFormat::for_stderr), export)
}

/// Writes to stdout; a closed pipe is an error to report, not a panic.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Ctrl-C or SIGTERM starts a graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
