//! The chat scenario's sockets: one per user, split into a writer that paces `send` frames (open
//! loop on a schedule, or closed loop behind the acknowledgements) and a reader that counts what
//! comes back. Each message carries its phase and send time in its content, so that every reader
//! measures send→ack and send→deliver without a shared table of sends; in the open loop that
//! time is the scheduled one, so a stalled system cannot hide its queueing (coordinated omission).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::{Layout, Pace};
use crate::api::User;
use crate::progress::Progress;
use crate::report::{histogram, record};
use crate::socket::{Target, Ws, connect};

/// Frames of a busy group conversation arrive back to back.
const READ_BUFFER: usize = 64 * 1024;
/// A phase's stragglers: the drain gives up after this long without any progress.
const DRAIN_STALL: Duration = Duration::from_secs(10);

/// Counts over the whole run, read by the progress line and diffed per phase.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    /// Deliveries the acknowledged messages owe: one per other member.
    expected: AtomicU64,
    delivered: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    closed: AtomicU64,
    /// The slowest send→deliver since the progress line last read it (µs): shows when stalls happen.
    slowest_delivery_us: AtomicU64,
    latencies: Mutex<Latencies>,
    first_error: Mutex<Option<String>>,
    /// Set when the tool starts closing the sockets itself: closes from then on are its own.
    closing: AtomicBool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub delivered: u64,
    pub refused: u64,
    pub errors: u64,
    pub closed: u64,
}

impl Counters {
    fn totals(&self) -> Totals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Totals {
            sent: get(&self.sent),
            acked: get(&self.acked),
            expected: get(&self.expected),
            delivered: get(&self.delivered),
            refused: get(&self.refused),
            errors: get(&self.errors),
            closed: get(&self.closed),
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().expect("not poisoned").get_or_insert(what);
    }
}

impl Totals {
    /// These counts with the refusals, errors and closed sockets of `all`.
    fn plus_problems(self, all: Totals) -> Totals {
        Totals { refused: all.refused, errors: all.errors, closed: all.closed, ..self }
    }

    fn since(self, start: Totals) -> Totals {
        Totals {
            sent: self.sent - start.sent,
            acked: self.acked - start.acked,
            expected: self.expected - start.expected,
            delivered: self.delivered - start.delivered,
            refused: self.refused - start.refused,
            errors: self.errors - start.errors,
            closed: self.closed - start.closed,
        }
    }
}

/// Send→deliver and send→ack latencies per phase, one pair of histograms for all sockets: one
/// per socket (150 KiB each) made at once when a phase starts stalled the tool itself.
#[derive(Default)]
pub struct Latencies {
    pub deliver: Vec<Histogram<u64>>,
    pub ack: Vec<Histogram<u64>>,
}

/// A send of this user's that was acknowledged, i.e. durably stored.
pub struct Acked {
    pub conversation: String,
    pub seq: i64,
    pub client_id: String,
}

/// What one user's socket received over the run.
#[derive(Default)]
pub struct Received {
    pub acked: Vec<Acked>,
    /// Seqs of other members' messages, per conversation, in arrival order.
    pub delivered: HashMap<String, Vec<i64>>,
    /// Why the server closed this socket before the end, if it did.
    pub closed: Option<String>,
}

/// The writer's view of its unanswered sends, for the closed loop and the drain.
#[derive(Default)]
struct Slot {
    outstanding: AtomicI64,
    answered: tokio::sync::Notify,
}

impl Slot {
    fn answer(&self) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.answered.notify_one();
    }
}

struct Client {
    sink: Option<SplitSink<Ws, Message>>,
    slot: Arc<Slot>,
    received: Arc<Mutex<Received>>,
    reader: JoinHandle<()>,
}

/// One phase's outcome.
pub struct PhaseOutcome {
    pub totals: Totals,
    /// From the first send to the last acknowledgement or delivery the drain waited for.
    pub seconds: f64,
    pub send_seconds: f64,
    /// Whether every acknowledgement and delivery owed arrived before the drain gave up.
    pub drained: bool,
}

/// One phase to run.
pub struct Phase<'a> {
    pub index: usize,
    pub label: &'a str,
    pub layout: &'a Layout,
    pub pace: Pace,
    /// Seconds of load before the measured `seconds`, not measured.
    pub warmup: f64,
    pub seconds: f64,
    pub messages: Option<u64>,
    pub size: usize,
}

pub struct Sockets {
    clients: Vec<Client>,
    counters: Arc<Counters>,
    /// The zero of the send times carried in messages.
    epoch: Instant,
}

impl Sockets {
    /// Opens every user's socket and waits for its `pong`, which also ends the gateway's hold
    /// of live events for an opening `resume`; then starts its reader.
    pub async fn open(targets: &[Target], users: &[User], fanout: Arc<HashMap<String, u64>>) -> anyhow::Result<Self> {
        let counters = Arc::new(Counters::default());
        let epoch = Instant::now();
        let mut opened: Vec<(usize, Ws)> = futures::stream::iter(users.iter().enumerate())
            .map(|(i, user)| async move {
                let mut ws = connect(&targets[i % targets.len()], &user.token, None, READ_BUFFER).await?;
                ws.send(Message::Text(json!({"type": "ping"}).to_string().into())).await?;
                tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(frame) = ws.next().await {
                        if let Message::Text(text) = frame?
                            && text.contains("\"pong\"")
                        {
                            return Ok(());
                        }
                    }
                    anyhow::bail!("the socket closed before its pong")
                })
                .await
                .context("no pong within 10 s")??;
                anyhow::Ok((i, ws))
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()
            .context("opening the users' WebSockets")?;
        // Clients in the order of `users`, whatever order the upgrades finished in.
        opened.sort_by_key(|(i, _)| *i);
        let clients = opened
            .into_iter()
            .map(|(i, ws)| {
                let user = &users[i];
                let (sink, stream) = ws.split();
                let slot = Arc::new(Slot::default());
                let received = Arc::new(Mutex::new(Received::default()));
                let reader = Reader {
                    me: user.name.clone(),
                    epoch,
                    slot: slot.clone(),
                    received: received.clone(),
                    counters: counters.clone(),
                    fanout: fanout.clone(),
                };
                Client { sink: Some(sink), slot, received, reader: tokio::spawn(reader.run(stream)) }
            })
            .collect();
        Ok(Sockets { clients, counters, epoch })
    }

    pub async fn phase(&mut self, phase: Phase<'_>) -> anyhow::Result<PhaseOutcome> {
        let start = self.counters.totals();
        let counters = self.counters.clone();
        let label = phase.label.to_owned();
        let progress = Progress::start(label, move || {
            let t = counters.totals().since(start);
            let slowest = counters.slowest_delivery_us.swap(0, Ordering::Relaxed) as f64 / 1000.0;
            format!(
                "sent {}, acked {}, delivered {}/{} (slowest {slowest:.1} ms), refused (429) {}, errors {}, closed {}",
                t.sent, t.acked, t.delivered, t.expected, t.refused, t.errors, t.closed
            )
        });
        let budget = Arc::new(AtomicU64::new(phase.messages.unwrap_or(u64::MAX)));
        let started = Instant::now();
        let measured_from = started + Duration::from_secs_f64(phase.warmup);
        let deadline = measured_from + Duration::from_secs_f64(phase.seconds);
        let count = self.clients.len();
        let mut writers = Vec::with_capacity(count);
        for user in 0..count {
            let conversation = phase.layout.conversations[phase.layout.home[user]].id.clone();
            let writer = Writer {
                phase: phase.index,
                user,
                conversation,
                pace: phase.pace,
                // Open loop: each user sends rate/users a second, the users staggered over one period.
                period: match phase.pace {
                    Pace::Open { rate } => Duration::from_secs_f64(count as f64 / rate),
                    Pace::Closed { .. } => Duration::ZERO,
                },
                offset: user as f64 / count as f64,
                start: started,
                measured_from,
                deadline,
                budget: budget.clone(),
                epoch: self.epoch,
                padding: "x".repeat(phase.size),
                slot: self.clients[user].slot.clone(),
                counters: self.counters.clone(),
            };
            let sink = self.clients[user].sink.take().context("a socket without its writer")?;
            writers.push((user, tokio::spawn(writer.run(sink))));
        }
        let at_measurement = {
            let counters = self.counters.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(measured_from.into()).await;
                counters.totals()
            })
        };
        for (client, writer) in writers {
            let (sink, result) = writer.await?;
            if let Err(e) = result {
                self.counters.error(format!("sending: {e}"));
            }
            self.clients[client].sink = Some(sink);
        }
        let send_seconds = measured_from.elapsed().as_secs_f64();
        let (drained, last_progress) = self.drain(start).await;
        drop(progress);
        let measured = self.counters.totals().since(at_measurement.await?);
        Ok(PhaseOutcome {
            // Refusals and errors of the warm-up count too: nothing may be hidden there.
            totals: measured.plus_problems(self.counters.totals().since(start)),
            seconds: last_progress.saturating_duration_since(measured_from).as_secs_f64().max(send_seconds),
            send_seconds,
            drained,
        })
    }

    /// Waits for every answer and delivery owed, or until nothing arrives for [`DRAIN_STALL`]:
    /// whether all arrived, and when the last did.
    async fn drain(&self, start: Totals) -> (bool, Instant) {
        let mut seen = self.counters.totals().since(start);
        let mut last_progress = Instant::now();
        loop {
            let now = self.counters.totals().since(start);
            let unanswered: i64 = self.clients.iter().map(|c| c.slot.outstanding.load(Ordering::Relaxed)).sum();
            if unanswered <= 0 && now.delivered >= now.expected {
                return (true, Instant::now());
            }
            if (now.acked, now.delivered, now.errors, now.refused)
                != (seen.acked, seen.delivered, seen.errors, seen.refused)
            {
                seen = now;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > DRAIN_STALL {
                return (false, last_progress);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The latencies recorded so far, per phase.
    pub fn latencies(&self) -> Latencies {
        std::mem::take(&mut *self.counters.latencies.lock().expect("not poisoned"))
    }

    pub fn first_error(&self) -> Option<String> {
        self.counters.first_error.lock().expect("not poisoned").clone()
    }

    /// Closes every socket; what each user's socket received, in the order of the users.
    pub async fn close(mut self) -> Vec<Received> {
        self.counters.closing.store(true, Ordering::Relaxed);
        for client in &mut self.clients {
            if let Some(sink) = &mut client.sink {
                let _ = sink.send(Message::Close(None)).await;
            }
        }
        for client in &mut self.clients {
            // The server answers a close at once; a reader that still waits is stuck.
            if tokio::time::timeout(Duration::from_secs(5), &mut client.reader).await.is_err() {
                client.reader.abort();
            }
        }
        self.clients.iter().map(|c| std::mem::take(&mut *c.received.lock().expect("not poisoned"))).collect()
    }
}

struct Writer {
    phase: usize,
    user: usize,
    conversation: String,
    pace: Pace,
    period: Duration,
    /// Where in the period this user sends, as a fraction of it.
    offset: f64,
    start: Instant,
    /// Sends scheduled before this are the warm-up: their latencies are not recorded.
    measured_from: Instant,
    deadline: Instant,
    budget: Arc<AtomicU64>,
    epoch: Instant,
    padding: String,
    slot: Arc<Slot>,
    counters: Arc<Counters>,
}

impl Writer {
    async fn run(self, mut sink: SplitSink<Ws, Message>) -> (SplitSink<Ws, Message>, anyhow::Result<()>) {
        let result = self.send_all(&mut sink).await;
        (sink, result)
    }

    async fn send_all(&self, sink: &mut SplitSink<Ws, Message>) -> anyhow::Result<()> {
        let mut next = self.start + self.period.mul_f64(self.offset);
        for n in 0u64.. {
            let stamp = match self.pace {
                Pace::Open { .. } => {
                    if next >= self.deadline {
                        return Ok(());
                    }
                    tokio::time::sleep_until(next.into()).await;
                    let stamp = next;
                    next += self.period;
                    stamp
                }
                Pace::Closed { window } => {
                    while self.slot.outstanding.load(Ordering::Relaxed) >= window as i64 {
                        tokio::select! {
                            _ = self.slot.answered.notified() => {}
                            _ = tokio::time::sleep_until(self.deadline.into()) => return Ok(()),
                        }
                    }
                    Instant::now()
                }
            };
            if stamp >= self.deadline
                || self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_err()
            {
                return Ok(());
            }
            let at = stamp.duration_since(self.epoch).as_micros();
            let frame = json!({
                "type": "send",
                "conversation_id": self.conversation,
                "client_id": format!("{}-{}-{n}", self.phase, self.user),
                // A warm-up send is marked "w" where the phase goes, so that its latency is not recorded.
                "content": if stamp < self.measured_from {
                    format!("w {at} {}", self.padding)
                } else {
                    format!("{} {at} {}", self.phase, self.padding)
                },
                "kind": "text",
            });
            self.slot.outstanding.fetch_add(1, Ordering::Relaxed);
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            sink.send(Message::Text(frame.to_string().into())).await?;
        }
        Ok(())
    }
}

struct Reader {
    me: String,
    epoch: Instant,
    slot: Arc<Slot>,
    received: Arc<Mutex<Received>>,
    counters: Arc<Counters>,
    fanout: Arc<HashMap<String, u64>>,
}

impl Reader {
    async fn run(self, mut stream: SplitStream<Ws>) {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(frame) => self.frame(&frame),
                    Err(e) => self.counters.error(format!("a frame that is not JSON ({e}): {text}")),
                },
                Ok(Message::Close(close)) => {
                    let why = close.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                    self.closed(why);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.closed(e.to_string());
                    return;
                }
            }
        }
    }

    fn closed(&self, why: String) {
        if self.counters.closing.load(Ordering::Relaxed) {
            return;
        }
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
        self.received.lock().expect("not poisoned").closed = Some(why);
    }

    fn frame(&self, frame: &Value) {
        let now = Instant::now();
        let message = &frame["message"];
        let conversation = message["conversation_id"].as_str().unwrap_or_default();
        let seq = message["seq"].as_i64().unwrap_or_default();
        match frame["type"].as_str() {
            Some("ack") => {
                if let Some((phase, latency)) = self.stamp(message, now) {
                    record(at(&mut self.counters.latencies.lock().expect("not poisoned").ack, phase), latency);
                }
                let mut received = self.received.lock().expect("not poisoned");
                received.acked.push(Acked {
                    conversation: conversation.to_owned(),
                    seq,
                    client_id: frame["client_id"].as_str().unwrap_or_default().to_owned(),
                });
                drop(received);
                self.counters
                    .expected
                    .fetch_add(self.fanout.get(conversation).copied().unwrap_or(0), Ordering::Relaxed);
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
                self.slot.answer();
            }
            // The sender's own socket gets no copy of its message; should it, it is not a delivery.
            Some("message") if message["sender"].as_str() != Some(&self.me) => {
                if let Some((phase, latency)) = self.stamp(message, now) {
                    record(at(&mut self.counters.latencies.lock().expect("not poisoned").deliver, phase), latency);
                    self.counters.slowest_delivery_us.fetch_max(latency.as_micros() as u64, Ordering::Relaxed);
                }
                let mut received = self.received.lock().expect("not poisoned");
                received.delivered.entry(conversation.to_owned()).or_default().push(seq);
                drop(received);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Some("error") => {
                if frame["code"].as_u64() == Some(429) {
                    if self.counters.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!(
                            "warning: the gateway refuses sends with 429 (SOULCHAT_SEND_LIMIT, default 50 per user per \
                             second): restart the system with e.g. SOULCHAT_SEND_LIMIT=100000 for a benchmark"
                        );
                    }
                } else {
                    self.counters.error(format!("an error frame: {frame}"));
                }
                if frame["client_id"].is_string() {
                    self.slot.answer();
                }
            }
            _ => {}
        }
    }

    /// The phase and the time since the send, from a message's content `"<phase> <µs> …"`; none
    /// for a warm-up send (`"w <µs> …"`).
    fn stamp(&self, message: &Value, now: Instant) -> Option<(usize, Duration)> {
        let mut words = message["content"].as_str()?.split(' ');
        let phase = words.next()?.parse().ok()?;
        let sent = self.epoch + Duration::from_micros(words.next()?.parse().ok()?);
        Some((phase, now.saturating_duration_since(sent)))
    }
}

/// The histogram of a phase, made on first use.
fn at(histograms: &mut Vec<Histogram<u64>>, phase: usize) -> &mut Histogram<u64> {
    while histograms.len() <= phase {
        histograms.push(histogram());
    }
    &mut histograms[phase]
}
