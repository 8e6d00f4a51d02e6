//! `--prefill N`: before the measured run, N messages through the WebSocket API, unmeasured, so
//! that the database already holds that much history. They go to conversations of the run's
//! users of their own (a group per pair), which the end-of-run check does not read back whole.
//!
//! The gateway answers a socket's sends one at a time, so the speed comes from many sockets:
//! [`SOCKETS_PER_USER`] per user, each with [`WINDOW`] sends queued so that the next is there as
//! soon as one is answered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::words;
use super::{Kind, layout};
use crate::api::{Api, User};
use crate::progress::Progress;
use crate::report::Check;
use crate::socket::{Target, connect};

const SOCKETS_PER_USER: usize = 4;
/// Sends queued per socket.
const WINDOW: usize = 8;
/// Deliveries to the other member's sockets arrive in bursts.
const READ_BUFFER: usize = 64 * 1024;
/// A refused (429) send waits this long before it is tried again.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// The fill gives up after this long without an answer.
const STALL: Duration = Duration::from_secs(30);
/// How often an idle socket looks whether the fill is over.
const POLL: Duration = Duration::from_millis(50);

/// What the fill did.
pub struct Filled {
    pub messages: u64,
    pub seconds: f64,
    pub refused: u64,
    pub check: Check,
}

/// The seqs acknowledged in one conversation, and the client id of the last.
#[derive(Default)]
struct Span {
    first: i64,
    last: i64,
    client_id: String,
}

impl Span {
    fn join(&mut self, other: Span) {
        if self.client_id.is_empty() {
            *self = other;
            return;
        }
        self.first = self.first.min(other.first);
        if other.last > self.last {
            self.last = other.last;
            self.client_id = other.client_id;
        }
    }
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

/// Sends `total` messages of `size` bytes as `users`, and checks that the last one of each
/// conversation is in its history.
pub async fn prefill(
    client: &Api,
    targets: &[Target],
    users: &[User],
    prefix: &str,
    total: u64,
    size: usize,
) -> anyhow::Result<Filled> {
    let layout = layout(client, users, Kind::Group, 2, &format!("{prefix}fill_")).await?;
    eprintln!("prefill: {total} messages over {} sockets", users.len() * SOCKETS_PER_USER);
    let counters = Arc::new(Counters::default());
    let shown = counters.clone();
    let progress = Progress::start("prefill", move || {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "acked {}/{total}, refused (429) {}, errors {}",
            get(&shown.acked),
            get(&shown.refused),
            get(&shown.errors)
        )
    });
    let budget = Arc::new(AtomicU64::new(total));
    // The content starts with "fill <n> ": about 12 bytes.
    let text_len = size.saturating_sub(12);
    let started = Instant::now();
    let sockets = users.iter().enumerate().flat_map(|(u, user)| (0..SOCKETS_PER_USER).map(move |s| (u, s, user)));
    let spans: Vec<HashMap<String, Span>> = futures::stream::iter(sockets)
        .map(|(u, s, user)| {
            let conversation = layout.conversations[layout.home[u]].id.clone();
            let (budget, counters) = (budget.clone(), counters.clone());
            async move {
                let ws = connect(&targets[u % targets.len()], &user.token, None, READ_BUFFER).await?;
                fill_socket(ws, &format!("f{u}-{s}"), &conversation, &budget, &counters, text_len).await
            }
        })
        .buffer_unordered(usize::MAX)
        .try_collect()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(progress);
    let mut acked: HashMap<String, Span> = HashMap::new();
    for (conversation, span) in spans.into_iter().flatten() {
        acked.entry(conversation).or_default().join(span);
    }
    let messages = counters.acked.load(Ordering::Relaxed);
    let check = stored(client, users, &layout.conversations, &acked, messages).await?;
    Ok(Filled { messages, seconds, refused: counters.refused.load(Ordering::Relaxed), check })
}

/// A number from a socket's name, so that its messages' words differ from every other socket's.
fn mix_name(name: &str) -> u64 {
    name.bytes().fold(0, |h, b| words::mix(h ^ u64::from(b)))
}

/// One socket's share: sends while the budget lasts, then waits for every answer.
async fn fill_socket(
    ws: crate::socket::Ws,
    name: &str,
    conversation: &str,
    budget: &AtomicU64,
    counters: &Counters,
    text_len: usize,
) -> anyhow::Result<HashMap<String, Span>> {
    let (mut sink, mut stream) = ws.split();
    let window = Semaphore::new(WINDOW);
    let mut acked: HashMap<String, Span> = HashMap::new();
    let idle = || window.available_permits() == WINDOW && budget.load(Ordering::Relaxed) == 0;
    let writer = async {
        let mut n = 0u64;
        loop {
            window.acquire().await.context("the window closed")?.forget();
            if budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err() {
                window.add_permits(1);
                // A refused send may still give the budget one back.
                if idle() {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            n += 1;
            let frame = json!({
                "type": "send",
                "conversation_id": conversation,
                "client_id": format!("{name}-{n}"),
                "content": format!("fill {n} {}", words::text(mix_name(name), n, text_len)),
                "kind": "text",
            });
            sink.send(Message::Text(frame.to_string().into())).await?;
        }
    };
    let reader = async {
        let mut answered = Instant::now();
        while !idle() {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                _ = tokio::time::sleep(POLL) => {
                    anyhow::ensure!(
                        window.available_permits() == WINDOW || answered.elapsed() < STALL,
                        "no answer within {STALL:?}"
                    );
                    continue;
                }
            };
            let Some(frame) = frame else { anyhow::bail!("the server closed the socket") };
            let Message::Text(text) = frame? else { continue };
            let frame: Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("ack") => {
                    let message = &frame["message"];
                    let (id, seq) = (message["conversation_id"].as_str(), message["seq"].as_i64());
                    if let (Some(id), Some(seq)) = (id, seq) {
                        let client_id = frame["client_id"].as_str().unwrap_or_default().to_owned();
                        acked.entry(id.to_owned()).or_default().join(Span { first: seq, last: seq, client_id });
                    }
                    counters.acked.fetch_add(1, Ordering::Relaxed);
                    answered = Instant::now();
                    window.add_permits(1);
                }
                Some("error") if frame["client_id"].is_string() => {
                    if frame["code"].as_u64() == Some(429) {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        // Not filled: the budget takes it back, to be sent again after a pause.
                        budget.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(REFUSED_PAUSE).await;
                    } else {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    answered = Instant::now();
                    window.add_permits(1);
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    let (written, read) = tokio::join!(writer, reader);
    written?;
    read?;
    Ok(acked)
}

/// Whether every conversation's last acknowledged message is in its history under its seq, and
/// the spans of seqs add up to the messages acknowledged (while the fill runs, its messages are a
/// conversation's only events, so their seqs follow one another).
async fn stored(
    client: &Api,
    users: &[User],
    conversations: &[super::Conversation],
    acked: &HashMap<String, Span>,
    messages: u64,
) -> anyhow::Result<Check> {
    let mut found = 0u64;
    for c in conversations {
        let Some(span) = acked.get(&c.id) else { continue };
        let (tail, _) = client.page(&users[c.members[0]], &c.id, span.last - 1).await?;
        if tail.iter().any(|(seq, id)| *seq == span.last && *id == span.client_id) {
            found += (span.last - span.first + 1) as u64;
        }
    }
    Ok(Check {
        name: "every prefilled message is in history",
        passed: found == messages,
        detail: format!(
            "{found} of {messages} acknowledged prefill messages found by the last seq of their conversation"
        ),
    })
}
