//! The chat scenario: users over real WebSockets sending to direct conversations or to groups,
//! open loop at a target rate or closed loop at the most the system takes. It reports messages
//! durably stored (acknowledged) and delivered per second and the send→deliver latency, then
//! reads history back to check that nothing acknowledged was lost and nothing came twice.
//!
//! The system under test must allow more sends per user than its default of 50 a second
//! (`SOULCHAT_SEND_LIMIT=100000 soulchat up`); refusals (429) are counted and reported as such.

mod load;
mod prefill;
mod search;
mod verify;
mod words;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, ensure};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::api::{Api, User, run_prefix};
use crate::baseline::{PUBLISH_ACKED, PUBLISH_PIPELINED, REQUEST_REPLY, REQUEST_REPLY_PIPELINED};
use crate::report::{Check, Figure, Report, histogram, latencies};
use crate::socket::Target;

/// The most members the API allows in a group.
const MAX_GROUP: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Direct,
    Group,
}

#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Options {
    /// Users, each with one WebSocket (each account costs two argon2 hashes to make).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Conversation kinds to load, one phase each (per pace): direct pairs, groups, or both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "direct")]
    kinds: Vec<Kind>,
    /// Members per group: the users are split into groups of this size.
    #[arg(long, default_value_t = 100)]
    group_size: usize,
    /// Open loop: this many messages a second in all, sent on schedule whatever the answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop (the default without --rate; both run one after the other when both are given).
    #[arg(long)]
    closed: bool,
    /// Unacknowledged sends each socket may have in the closed loop (the gateway stores a
    /// socket's sends to one conversation one at a time, so more only queues them there).
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Seconds each phase sends for.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds each phase sends at its pace before the measurement starts, without a pause
    /// (those messages are still checked), so that the figures are the steady state's rather
    /// than those of the first second after hundreds of sockets started sending at once.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// At most this many messages per phase.
    #[arg(long)]
    messages: Option<u64>,
    /// Message content size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Messages sent before the run, unmeasured, as fast as the system takes them, into
    /// conversations of the same users (a group per pair), so that the database already holds
    /// that much history.
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// After the run, this many message searches through the REST API (four at a time), each
    /// for one or two words of the prefilled messages' vocabulary; their latency is reported.
    #[arg(long, default_value_t = 0)]
    searches: u64,
    /// Small enough for CI: a few users, a few hundred messages, under the default send limit,
    /// no NATS baseline; asserts only that nothing acknowledged was lost or duplicated.
    #[arg(long)]
    pub quick: bool,
}

impl Options {
    fn quick() -> Self {
        Options {
            users: 6,
            kinds: vec![Kind::Direct, Kind::Group],
            group_size: 3,
            // 20 a second per user stays under the gateway's default limit of 50.
            rate: Some(120.0),
            closed: false,
            window: 1,
            seconds: 10.0,
            warmup: 0.0,
            messages: Some(150),
            size: 100,
            prefill: 0,
            searches: 0,
            quick: true,
        }
    }

    fn paces(&self) -> Vec<Pace> {
        let mut paces: Vec<Pace> = self.rate.map(|rate| Pace::Open { rate }).into_iter().collect();
        if self.closed || paces.is_empty() {
            paces.push(Pace::Closed { window: self.window.max(1) });
        }
        paces
    }
}

/// How a phase paces its sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    Open { rate: f64 },
    Closed { window: usize },
}

/// A conversation of the run and its members (indexes into the users).
pub struct Conversation {
    pub id: String,
    pub members: Vec<usize>,
}

/// The conversations of one kind, and the one each user sends to.
pub struct Layout {
    kind: Kind,
    pub conversations: Vec<Conversation>,
    pub home: Vec<usize>,
}

impl Layout {
    fn name(&self) -> String {
        match self.kind {
            Kind::Direct => "direct".into(),
            Kind::Group => {
                format!("groups of {}", self.conversations.iter().map(|c| c.members.len()).max().unwrap_or(0))
            }
        }
    }
}

/// `soulchat-bench chat --quick` as a library call, for a test against a running gateway: an
/// error unless every acknowledged message was stored once and delivered once to every member.
/// `prefill` messages go in first, and must be found in history too.
pub async fn quick_check(api: &str, prefill: u64) -> anyhow::Result<()> {
    let report = run(&[api.to_owned()], &Options { prefill, ..Options::quick() }).await?;
    report.print();
    report.verdict()
}

/// Runs the scenario through the gateways at `apis` (each user's socket on one of them, in turn).
pub async fn run(apis: &[String], options: &Options) -> anyhow::Result<Report> {
    let options =
        if options.quick { Options { prefill: options.prefill, ..Options::quick() } } else { options.clone() };
    ensure!(options.users >= 2, "--users must be at least 2");
    ensure!(options.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    let client = Api::new(&apis[0], 16)?;
    let mut targets = Vec::new();
    for api in apis {
        targets.push(Target::resolve(api).await?);
    }
    let prefix = run_prefix();
    eprintln!("chat: making {} accounts {prefix}* (register, log in: argon2 takes its time)", options.users);
    let users = client.accounts(&prefix, options.users, 4).await?;
    let mut layouts = Vec::new();
    let mut kinds = options.kinds.clone();
    kinds.dedup();
    for kind in kinds {
        layouts.push(layout(&client, &users, kind, options.group_size, &prefix).await?);
    }
    // Before the run's sockets open, so that they get none of its deliveries.
    let filled = match options.prefill {
        0 => None,
        total => Some(prefill::prefill(&client, &targets, &users, &prefix, total, options.size).await?),
    };
    let fanout: HashMap<String, u64> =
        layouts.iter().flat_map(|l| &l.conversations).map(|c| (c.id.clone(), c.members.len() as u64 - 1)).collect();
    eprintln!("chat: opening {} WebSockets", users.len());
    let mut sockets = load::Sockets::open(&targets, &users, Arc::new(fanout)).await?;

    let mut report = Report::new("chat", serde_json::to_value(&options)?);
    if let Some(filled) = filled {
        report.figures.extend([
            Figure::new("prefilled", filled.messages as f64, "messages"),
            Figure::new("prefill: stored (acked)", filled.messages as f64 / filled.seconds, "msg/s"),
        ]);
        report.notes.push(format!(
            "{} messages were prefilled in {:.0} s before the run ({} sends refused with 429 and sent again)",
            filled.messages, filled.seconds, filled.refused
        ));
        report.checks.push(filled.check);
    }
    let mut phases = Vec::new();
    for layout in &layouts {
        for pace in options.paces() {
            let label = match pace {
                Pace::Open { rate } => format!("{}, open {rate:.0}/s", layout.name()),
                Pace::Closed { window } => format!("{}, closed (window {window})", layout.name()),
            };
            let phase = load::Phase {
                index: phases.len(),
                label: &label,
                layout,
                pace,
                warmup: options.warmup,
                seconds: options.seconds,
                messages: options.messages,
                // The content starts with "<phase> <µs> ": about 16 bytes.
                size: options.size.clamp(20, 4000) - 16,
            };
            let outcome = sockets.phase(phase).await?;
            phases.push((label, outcome));
        }
    }
    let first_error = sockets.first_error();
    let recorded = sockets.latencies();
    let received = sockets.close().await;

    let mut refused = 0;
    for (index, (label, outcome)) in phases.iter().enumerate() {
        let t = outcome.totals;
        refused += t.refused;
        report.figures.extend([
            Figure::new(format!("{label}: offered"), t.sent as f64 / outcome.send_seconds, "msg/s"),
            Figure::new(format!("{label}: stored (acked)"), t.acked as f64 / outcome.seconds, "msg/s")
                .versus(format!("{PUBLISH_PIPELINED}: rate")),
            Figure::new(format!("{label}: delivered"), t.delivered as f64 / outcome.seconds, "msg/s")
                .versus(format!("{REQUEST_REPLY_PIPELINED}: rate")),
        ]);
        report.figures.extend(latencies(
            &format!("{label}: send->deliver"),
            recorded.deliver.get(index).unwrap_or(&histogram()),
            Some(REQUEST_REPLY),
        ));
        report.figures.extend(latencies(
            &format!("{label}: send->ack"),
            recorded.ack.get(index).unwrap_or(&histogram()),
            Some(PUBLISH_ACKED),
        ));
        report.figures.extend([
            Figure::new(format!("{label}: refused (429)"), t.refused as f64, "sends"),
            Figure::new(format!("{label}: other errors"), t.errors as f64, "frames"),
            Figure::new(format!("{label}: sockets closed by the server"), t.closed as f64, "sockets"),
        ]);
        if !outcome.drained {
            report.notes.push(format!(
                "{label}: gave up waiting after 10 s without progress: {} of {} sends answered, {} of {} deliveries",
                t.acked + t.refused + t.errors,
                t.sent,
                t.delivered,
                t.expected
            ));
        }
    }
    if options.searches > 0 {
        let searched = search::run(&client, &users, options.searches).await?;
        report.figures.extend(latencies("message search", &searched.latencies, None));
        report.figures.push(Figure::new("message search: found nothing", searched.empty as f64, "searches"));
    }
    let conversations: Vec<&Conversation> = layouts.iter().flat_map(|l| &l.conversations).collect();
    report.checks.extend(verify::check(&client, &users, &conversations, &received, &mut report.notes).await?);
    if refused > 0 {
        let why = format!(
            "{refused} sends were refused with 429: the gateway limits sends per user per second; restart the system \
             with a higher limit, e.g. SOULCHAT_SEND_LIMIT=100000 soulchat up"
        );
        if options.quick {
            report.notes.push(why);
        } else {
            report.checks.push(Check { name: "no send refused by the rate limit", passed: false, detail: why });
        }
    }
    if let Some(e) = first_error {
        report.notes.push(format!("first error: {e}"));
    }
    report.notes.push(format!(
        "{} users, one WebSocket each; {} B messages; send->deliver is timed from the scheduled send in the open loop",
        users.len(),
        options.size
    ));
    if options.warmup > 0.0 {
        report.notes.push(format!(
            "each phase's figures follow {} s of the same load, not measured (but checked)",
            options.warmup
        ));
    }
    Ok(report)
}

/// Makes the conversations of one kind: direct pairs (the odd one out pairs with the first
/// user), or groups of `group_size` (a remainder of one joins the last group).
async fn layout(client: &Api, users: &[User], kind: Kind, group_size: usize, prefix: &str) -> anyhow::Result<Layout> {
    let n = users.len();
    let sets: Vec<Vec<usize>> = match kind {
        Kind::Direct => {
            let mut pairs: Vec<Vec<usize>> = (0..n / 2).map(|i| vec![2 * i, 2 * i + 1]).collect();
            if n % 2 == 1 {
                pairs.push(vec![n - 1, 0]);
            }
            pairs
        }
        Kind::Group => {
            let size = group_size.clamp(2, MAX_GROUP.min(n));
            let mut groups: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(size).map(<[usize]>::to_vec).collect();
            if groups.len() > 1 && groups.last().is_some_and(|g| g.len() == 1) {
                let last = groups.pop().unwrap_or_default();
                groups.last_mut().expect("another group").extend(last);
            }
            groups
        }
    };
    eprintln!("chat: making {} {kind:?} conversations", sets.len());
    let conversations: Vec<Conversation> = futures::stream::iter(sets.into_iter().enumerate())
        .map(|(k, members)| async move {
            let owner = &users[members[0]];
            let id = match kind {
                Kind::Direct => client.direct(owner, &users[members[1]].name).await?,
                Kind::Group => {
                    let others: Vec<String> = members[1..].iter().map(|&m| users[m].name.clone()).collect();
                    client.group(owner, &format!("{prefix}g{k}"), &others).await?
                }
            };
            anyhow::Ok(Conversation { id, members })
        })
        .buffered(16)
        .try_collect()
        .await?;
    // Each user sends to the first conversation it is in.
    let mut home = vec![usize::MAX; n];
    for (k, c) in conversations.iter().enumerate().rev() {
        for &m in &c.members {
            home[m] = k;
        }
    }
    if home.contains(&usize::MAX) {
        bail!("a user without a conversation");
    }
    Ok(Layout { kind, conversations, home })
}
