//! `soulchat-bench <scenario>`: load scenarios run by hand against a running system (`soulchat up`),
//! each printed as a table beside what the same nats-server does on its own, because a figure
//! means little without the floor the mesh stands on. Speed targets live here, never in timed
//! unit tests; `quick_check` is the one piece meant for CI, and it asserts correctness only.

mod api;
mod baseline;
mod chat;
mod connections;
mod progress;
mod report;
mod rest;
mod socket;

use std::path::PathBuf;

pub use chat::quick_check;

/// `soulchat-bench`: the options every scenario shares, then the scenario.
#[derive(Debug, clap::Parser)]
#[command(
    name = "soulchat-bench",
    version,
    about = "Load scenarios against a running SoulChat, beside the nats-server's own figures"
)]
pub struct Args {
    /// The gateway's base URL; several, comma-separated, spread the chat scenario's sockets and the
    /// REST scenario's connections over them (accounts are made through the first).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',', global = true)]
    api: Vec<String>,
    /// The nats-server the system under test uses (`soulchat up` logs the one it started).
    #[arg(long, default_value = "nats://127.0.0.1:4222", global = true)]
    nats: String,
    /// The NKey seed file to connect to that server with: `<data dir>/nats/admin.nk` under
    /// `soulchat up` (the baseline creates and deletes a stream of its own).
    #[arg(long, global = true)]
    nats_nkey: Option<PathBuf>,
    /// Also write the figures to this file as JSON.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Seconds per measurement of the short NATS baseline the other scenarios run beside their own.
    #[arg(long, default_value_t = 1.0, global = true)]
    baseline_seconds: f64,
    /// Skip that short baseline (no ratios are printed).
    #[arg(long, global = true)]
    no_baseline: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// Raw NATS request/reply and JetStream publish against the system's nats-server.
    Baseline(baseline::Options),
    /// Users over WebSockets sending to direct conversations or groups; checks nothing was lost.
    Chat(chat::Options),
    /// Idle authenticated WebSockets on one gateway: its memory per socket.
    Connections(connections::Options),
    /// GET profile at a fixed concurrency, and login apart (argon2-bound on purpose).
    Rest(rest::Options),
}

/// Runs one scenario, prints its table, writes its JSON; an error when a check failed.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let short = match &args.scenario {
        Scenario::Baseline(_) => None,
        Scenario::Chat(options) if options.quick => None,
        _ if args.no_baseline => None,
        _ => Some(baseline::Options::short(args.baseline_seconds)),
    };
    // The short baseline goes first: a wrong --nats fails in seconds, not after the whole scenario.
    let beside = match &short {
        Some(options) => baseline::measure(&args.nats, args.nats_nkey.as_deref(), options).await?,
        None => Vec::new(),
    };
    let mut report = match &args.scenario {
        Scenario::Baseline(options) => {
            let mut report = report::Report::new("baseline", serde_json::to_value(options)?);
            report.baseline = baseline::measure(&args.nats, args.nats_nkey.as_deref(), options).await?;
            report.notes.push(baseline::describe(options));
            report
        }
        Scenario::Chat(options) => chat::run(&args.api, options).await?,
        // One gateway's memory per socket: the first.
        Scenario::Connections(options) => connections::run(&args.api[0], options).await?,
        Scenario::Rest(options) => rest::run(&args.api, options).await?,
    };
    if let Some(options) = short {
        report.baseline = beside;
        report.notes.push(baseline::describe(&options));
    }
    report.print();
    if let Some(path) = &args.json {
        report.write_json(path, &args.api.join(","), &args.nats)?;
        eprintln!("figures written to {}", path.display());
    }
    report.verdict()
}
