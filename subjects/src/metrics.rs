//! Every metric the mesh exports, written once: its name, kind, help and labels in [`ALL`], and
//! one function per metric that records it, so a call site cannot misspell a name or a label.
//!
//! Names are what dashboards and alert rules (`deploy/`) query, so they cross the process
//! boundary like a subject does. Label values come only from the contract (service and operation
//! names), route templates and fixed sets spelled here, never from what a client sent: each
//! label's set of values stays small, as Prometheus needs.
//!
//! Without a recorder installed (the admin listener installs one) every call here is a no-op.

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{SharedString, counter, gauge, histogram};

/// What a metric is, for its `# TYPE` and the README's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn metric(name: &'static str, kind: Kind, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind, help, labels }
}

use Kind::{Counter, Gauge, Histogram};

pub const HTTP_REQUESTS: Metric = metric(
    "http_requests_total",
    Counter,
    &["method", "endpoint", "status"],
    "HTTP requests answered by the gateway, by route template (`unmatched` for 404s) and status.",
);
pub const HTTP_DURATION: Metric = metric(
    "http_request_duration_seconds",
    Histogram,
    &["method", "endpoint"],
    "Time from a request's head to its response's head at the gateway.",
);
pub const HTTP_CONNECTIONS: Metric =
    metric("soulchat_http_connections", Gauge, &[], "Open HTTP connections at the gateway (WebSockets included).");
pub const HTTP_CONNECTIONS_REFUSED: Metric = metric(
    "soulchat_http_connections_refused_total",
    Counter,
    &[],
    "HTTP connections closed at once because a connection cap was reached.",
);
pub const RATE_LIMITED: Metric =
    metric("soulchat_rate_limited_total", Counter, &[], "Requests refused with 429 by the gateway's token buckets.");
pub const LIMIT_REFUSALS: Metric = metric(
    "soulchat_limit_refusals_total",
    Counter,
    &["limit"],
    "Refusals by the login limit (`login`) and the per-user send limit (`send`).",
);
pub const RPC_SERVER_REQUESTS: Metric = metric(
    "soulchat_rpc_server_requests_total",
    Counter,
    &["service", "operation", "code"],
    "Requests a worker answered, by operation and outcome (`ok` or the error's HTTP-style code).",
);
pub const RPC_SERVER_DURATION: Metric = metric(
    "soulchat_rpc_server_duration_seconds",
    Histogram,
    &["service", "operation"],
    "Time a worker took to answer a request.",
);
pub const RPC_CLIENT_REQUESTS: Metric = metric(
    "soulchat_rpc_client_requests_total",
    Counter,
    &["service", "operation", "code"],
    "Calls made to workers, by outcome: `ok`, an error code, `unavailable` (no responders), `timeout`, `malformed`.",
);
pub const RPC_CLIENT_DURATION: Metric = metric(
    "soulchat_rpc_client_duration_seconds",
    Histogram,
    &["service", "operation"],
    "Time a call to a worker took, as its caller saw it.",
);
pub const NATS_DISRUPTIONS: Metric = metric(
    "soulchat_nats_disruptions_total",
    Counter,
    &["kind"],
    "NATS connection disruptions: `disconnected`, `reconnected`, `slow_consumer`.",
);
pub const WS_OPEN: Metric = metric("soulchat_ws_open", Gauge, &[], "Open WebSocket sessions.");
pub const WS_FRAMES_RECEIVED: Metric =
    metric("soulchat_ws_frames_received_total", Counter, &["type"], "WebSocket frames received, by frame type.");
pub const WS_FRAMES_SENT: Metric =
    metric("soulchat_ws_frames_sent_total", Counter, &["type"], "WebSocket frames sent, by frame type.");
pub const WS_CLOSES: Metric = metric(
    "soulchat_ws_closes_total",
    Counter,
    &["code"],
    "WebSocket sessions ended, by the close code the gateway sent (`client` when the client closed).",
);
pub const WS_RESUMES: Metric = metric("soulchat_ws_resumes_total", Counter, &[], "`resume` frames answered.");
pub const WS_SLOW_CONSUMER_DROPS: Metric = metric(
    "soulchat_ws_slow_consumer_drops_total",
    Counter,
    &[],
    "WebSockets closed (4000) because their queue of frames overflowed.",
);
pub const WS_CALLS_FULL: Metric = metric(
    "soulchat_ws_calls_full_total",
    Counter,
    &[],
    "Times a WebSocket reached its bound of calls in flight and stopped reading frames until one completed.",
);
pub const CHAT_MESSAGES_STORED: Metric =
    metric("soulchat_chat_messages_stored_total", Counter, &[], "Messages committed (retries of a send not counted).");
pub const CHAT_COMMIT_BATCH: Metric =
    metric("soulchat_chat_commit_batch_size", Histogram, &[], "Sends per group commit.");
pub const CHAT_COMMIT_DURATION: Metric =
    metric("soulchat_chat_commit_duration_seconds", Histogram, &[], "Time a group commit took.");
pub const CHAT_EVENT_AGE: Metric = metric(
    "soulchat_chat_event_age_seconds",
    Histogram,
    &[],
    "Time from a chat event's recording (in the chat worker's transaction) to this gateway's fan-out of it: the relay, the stream and the gateway's feed, so delivery lag shows before a client's does (across hosts, clock skew adds in).",
);
pub const CHAT_EVENTS_PRUNED: Metric = metric(
    "soulchat_chat_events_pruned_total",
    Counter,
    &[],
    "Chat events deleted from the resume log after the retention period.",
);
pub const RELAY_BACKLOG: Metric = metric(
    "soulchat_relay_backlog",
    Gauge,
    &["service", "relay"],
    "Outbox entries committed but not yet on the stream, as the relay last found them (at most one batch, 512).",
);
pub const RELAY_PUBLISHED: Metric = metric(
    "soulchat_relay_published_total",
    Counter,
    &["service", "relay"],
    "Outbox entries the relay published and saw acknowledged.",
);
pub const CONSUMER_PENDING: Metric = metric(
    "soulchat_consumer_pending",
    Gauge,
    &["durable"],
    "Events on the stream a durable consumer has not yet been given.",
);
pub const CONSUMER_REDELIVERED: Metric = metric(
    "soulchat_consumer_redelivered",
    Gauge,
    &["durable"],
    "Events a durable consumer was given more than once and has not yet acknowledged.",
);
pub const CONSUMER_ACK_PENDING: Metric = metric(
    "soulchat_consumer_ack_pending",
    Gauge,
    &["durable"],
    "Events a durable consumer was given and has not yet acknowledged.",
);
pub const PROCESSED_EVENTS_PRUNED: Metric = metric(
    "soulchat_processed_events_pruned_total",
    Counter,
    &["service"],
    "Processed-event ids forgotten once older than the deduplication horizon.",
);
pub const NOTIFICATION_DELIVERIES: Metric = metric(
    "soulchat_notification_deliveries_total",
    Counter,
    &["channel", "outcome"],
    "Delivery attempts by channel (`push`, `email`, `sms`, `unknown`) and outcome (`sent`, `retried`, `gone`, `dead_lettered`).",
);
pub const DEAD_LETTERS: Metric = metric(
    "soulchat_dead_letters_total",
    Counter,
    &["channel"],
    "Deliveries moved to the dead-letter stream, by channel.",
);
pub const CACHE_REQUESTS: Metric = metric(
    "soulchat_cache_requests_total",
    Counter,
    &["cache", "result"],
    "Cache look-ups by cache and result (`hit`, `miss`).",
);
pub const SAGA_STEPS: Metric = metric(
    "soulchat_saga_steps_total",
    Counter,
    &["saga", "step", "outcome"],
    "Saga steps run, by saga, step and outcome (`done`, `failed`).",
);
pub const SAGAS_OPEN: Metric =
    metric("soulchat_sagas_open", Gauge, &["saga"], "Sagas begun and not yet finished, as last counted.");
pub const SAGA_OLDEST_OPEN: Metric = metric(
    "soulchat_saga_oldest_open_seconds",
    Gauge,
    &["saga"],
    "Age of the oldest unfinished saga, as last counted (0 when none is open).",
);

/// Fixed sets of label values.
pub mod label {
    /// An HTTP method as a label: the API's methods, anything else `other`.
    pub fn method(method: &str) -> &'static str {
        match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        }
    }

    /// The `endpoint` of a request no route matched.
    pub(super) const UNMATCHED: &str = "unmatched";
}

/// Every metric, for `describe` and the README.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_REFUSED,
    RATE_LIMITED,
    LIMIT_REFUSALS,
    RPC_SERVER_REQUESTS,
    RPC_SERVER_DURATION,
    RPC_CLIENT_REQUESTS,
    RPC_CLIENT_DURATION,
    NATS_DISRUPTIONS,
    WS_OPEN,
    WS_FRAMES_RECEIVED,
    WS_FRAMES_SENT,
    WS_CLOSES,
    WS_RESUMES,
    WS_SLOW_CONSUMER_DROPS,
    WS_CALLS_FULL,
    CHAT_MESSAGES_STORED,
    CHAT_COMMIT_BATCH,
    CHAT_COMMIT_DURATION,
    CHAT_EVENT_AGE,
    CHAT_EVENTS_PRUNED,
    RELAY_BACKLOG,
    RELAY_PUBLISHED,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    CONSUMER_ACK_PENDING,
    PROCESSED_EVENTS_PRUNED,
    NOTIFICATION_DELIVERIES,
    DEAD_LETTERS,
    CACHE_REQUESTS,
    SAGA_STEPS,
    SAGAS_OPEN,
    SAGA_OLDEST_OPEN,
];

/// Gives the installed recorder every metric's help text (the `# HELP` lines).
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => ::metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => ::metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => {
                let unit = if m.name.ends_with("_seconds") { ::metrics::Unit::Seconds } else { ::metrics::Unit::Count };
                ::metrics::describe_histogram!(m.name, unit, m.help)
            }
        }
    }
}

/// An HTTP request answered by the route of template `route`, or by none (`unmatched`).
pub fn http_request(method: &str, route: Option<Arc<str>>, status: u16, elapsed: Duration) {
    let method = label::method(method);
    let endpoint = match route {
        Some(template) => SharedString::from_shared(template),
        None => SharedString::const_str(label::UNMATCHED),
    };
    counter!(HTTP_REQUESTS.name, "method" => method, "endpoint" => endpoint.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION.name, "method" => method, "endpoint" => endpoint).record(elapsed);
}

pub fn http_connection_opened() {
    gauge!(HTTP_CONNECTIONS.name).increment(1.0);
}

pub fn http_connection_closed() {
    gauge!(HTTP_CONNECTIONS.name).decrement(1.0);
}

pub fn http_connection_refused() {
    counter!(HTTP_CONNECTIONS_REFUSED.name).increment(1);
}

pub fn rate_limited() {
    counter!(RATE_LIMITED.name).increment(1);
}

/// Which per-account limit refused.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Login,
    Send,
}

impl Limit {
    const ALL: [Limit; 2] = [Limit::Login, Limit::Send];

    fn label(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::Send => "send",
        }
    }
}

pub fn limit_refused(limit: Limit) {
    counter!(LIMIT_REFUSALS.name, "limit" => limit.label()).increment(1);
}

/// How an operation ended, as the `code` label.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok,
    /// The error's HTTP-style code (400, 404, 503...).
    Error(u16),
    /// Nobody subscribed to the subject.
    Unavailable,
    /// No answer before the deadline.
    Timeout,
    /// An answer that did not decode.
    Malformed,
}

impl Outcome {
    fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Error(code) => code.to_string().into(),
            Outcome::Unavailable => "unavailable".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Malformed => "malformed".into(),
        }
    }
}

/// A worker answered `operation` of `service` (contract names).
pub fn rpc_served(service: &'static str, operation: &'static str, outcome: Outcome, elapsed: Duration) {
    counter!(RPC_SERVER_REQUESTS.name, "service" => service, "operation" => operation, "code" => outcome.label())
        .increment(1);
    histogram!(RPC_SERVER_DURATION.name, "service" => service, "operation" => operation).record(elapsed);
}

/// A call to `operation` of `service` (contract names) ended.
pub fn rpc_called(service: &'static str, operation: &'static str, outcome: Outcome, elapsed: Duration) {
    counter!(RPC_CLIENT_REQUESTS.name, "service" => service, "operation" => operation, "code" => outcome.label())
        .increment(1);
    histogram!(RPC_CLIENT_DURATION.name, "service" => service, "operation" => operation).record(elapsed);
}

/// Something happened to a NATS connection that may have lost live messages.
#[derive(Debug, Clone, Copy)]
pub enum Disruption {
    Disconnected,
    Reconnected,
    SlowConsumer,
}

impl Disruption {
    const ALL: [Disruption; 3] = [Disruption::Disconnected, Disruption::Reconnected, Disruption::SlowConsumer];

    fn label(self) -> &'static str {
        match self {
            Disruption::Disconnected => "disconnected",
            Disruption::Reconnected => "reconnected",
            Disruption::SlowConsumer => "slow_consumer",
        }
    }
}

pub fn nats_disrupted(kind: Disruption) {
    counter!(NATS_DISRUPTIONS.name, "kind" => kind.label()).increment(1);
}

pub fn ws_opened() {
    gauge!(WS_OPEN.name).increment(1.0);
}

/// A session ended: `code` is the close code the gateway sent, `None` when the client closed.
pub fn ws_closed(code: Option<u16>) {
    gauge!(WS_OPEN.name).decrement(1.0);
    let code: std::borrow::Cow<'static, str> = match code {
        Some(code) => code.to_string().into(),
        None => "client".into(),
    };
    counter!(WS_CLOSES.name, "code" => code).increment(1);
}

/// A client frame of `kind` (one of the API's frame types, or `invalid`).
pub fn ws_frame_received(kind: &'static str) {
    counter!(WS_FRAMES_RECEIVED.name, "type" => kind).increment(1);
}

/// A frame of `kind` (one of the API's frame types) written to a socket.
pub fn ws_frame_sent(kind: &'static str) {
    counter!(WS_FRAMES_SENT.name, "type" => kind).increment(1);
}

pub fn ws_resumed() {
    counter!(WS_RESUMES.name).increment(1);
}

pub fn ws_slow_consumer_dropped() {
    counter!(WS_SLOW_CONSUMER_DROPS.name).increment(1);
}

pub fn ws_calls_full() {
    counter!(WS_CALLS_FULL.name).increment(1);
}

/// A group commit of `sends` sends, `stored` of them new messages.
pub fn chat_committed(sends: usize, stored: usize, elapsed: Duration) {
    histogram!(CHAT_COMMIT_BATCH.name).record(sends as f64);
    histogram!(CHAT_COMMIT_DURATION.name).record(elapsed);
    counter!(CHAT_MESSAGES_STORED.name).increment(stored as u64);
}

/// A gateway fans out a chat event recorded `age` ago.
pub fn chat_event_fanned_out(age: Duration) {
    histogram!(CHAT_EVENT_AGE.name).record(age);
}

/// The chat worker's retention deleted `events` from the resume log.
pub fn chat_events_pruned(events: u64) {
    counter!(CHAT_EVENTS_PRUNED.name).increment(events);
}

/// A relay found `entries` waiting (at most a batch).
pub fn relay_backlog(service: &'static str, relay: &'static str, entries: usize) {
    gauge!(RELAY_BACKLOG.name, "service" => service, "relay" => relay).set(entries as f64);
}

/// A relay's `entries` are on the stream.
pub fn relay_published(service: &'static str, relay: &'static str, entries: usize) {
    counter!(RELAY_PUBLISHED.name, "service" => service, "relay" => relay).increment(entries as u64);
}

/// A durable consumer's state, as the server last reported it.
pub fn consumer_state(durable: &'static str, pending: u64, ack_pending: usize, redelivered: usize) {
    gauge!(CONSUMER_PENDING.name, "durable" => durable).set(pending as f64);
    gauge!(CONSUMER_ACK_PENDING.name, "durable" => durable).set(ack_pending as f64);
    gauge!(CONSUMER_REDELIVERED.name, "durable" => durable).set(redelivered as f64);
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Retried,
    /// The push service no longer knows the subscription.
    Gone,
    DeadLettered,
}

impl Delivery {
    const ALL: [Delivery; 4] = [Delivery::Sent, Delivery::Retried, Delivery::Gone, Delivery::DeadLettered];

    fn label(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Retried => "retried",
            Delivery::Gone => "gone",
            Delivery::DeadLettered => "dead_lettered",
        }
    }
}

/// A service forgot `rows` processed-event ids.
pub fn processed_events_pruned(service: &'static str, rows: u64) {
    counter!(PROCESSED_EVENTS_PRUNED.name, "service" => service).increment(rows);
}

/// A delivery attempt on `channel` (a channel's name, or `unknown`).
pub fn notification_delivered(channel: &'static str, outcome: Delivery) {
    counter!(NOTIFICATION_DELIVERIES.name, "channel" => channel, "outcome" => outcome.label()).increment(1);
    if outcome == Delivery::DeadLettered {
        counter!(DEAD_LETTERS.name, "channel" => channel).increment(1);
    }
}

fn cache_result(hit: bool) -> &'static str {
    if hit { "hit" } else { "miss" }
}

/// A look-up in `cache`: found or not.
pub fn cache_looked_up(cache: &'static str, hit: bool) {
    counter!(CACHE_REQUESTS.name, "cache" => cache, "result" => cache_result(hit)).increment(1);
}

/// A saga step ran.
pub fn saga_step(saga: &'static str, step: &'static str, done: bool) {
    let outcome = if done { "done" } else { "failed" };
    counter!(SAGA_STEPS.name, "saga" => saga, "step" => step, "outcome" => outcome).increment(1);
}

/// The sagas of a kind not yet finished: how many, and the age of the oldest.
pub fn sagas_open(saga: &'static str, open: usize, oldest: Duration) {
    gauge!(SAGAS_OPEN.name, "saga" => saga).set(open as f64);
    gauge!(SAGA_OLDEST_OPEN.name, "saga" => saga).set(oldest.as_secs_f64());
}

/// Series of rare events start at zero, so that rules and dashboards find them (and `increase`
/// sees the first event) before anything happened.
pub mod zero {
    use super::*;

    /// A NATS connection's disruptions.
    pub fn nats() {
        for kind in Disruption::ALL {
            counter!(NATS_DISRUPTIONS.name, "kind" => kind.label()).increment(0);
        }
    }

    /// The gateway's refusals and socket events.
    pub fn gateway() {
        counter!(RATE_LIMITED.name).increment(0);
        counter!(HTTP_CONNECTIONS_REFUSED.name).increment(0);
        for limit in Limit::ALL {
            counter!(LIMIT_REFUSALS.name, "limit" => limit.label()).increment(0);
        }
        counter!(WS_RESUMES.name).increment(0);
        counter!(WS_SLOW_CONSUMER_DROPS.name).increment(0);
        gauge!(WS_OPEN.name).increment(0.0);
    }

    /// The deliveries and dead letters of each delivery channel.
    pub fn deliveries(channels: &[&'static str]) {
        for &channel in channels {
            for outcome in Delivery::ALL {
                counter!(NOTIFICATION_DELIVERIES.name, "channel" => channel, "outcome" => outcome.label()).increment(0);
            }
            counter!(DEAD_LETTERS.name, "channel" => channel).increment(0);
        }
    }

    /// A cache's hits and misses.
    pub fn cache(cache: &'static str) {
        for hit in [true, false] {
            counter!(CACHE_REQUESTS.name, "cache" => cache, "result" => cache_result(hit)).increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_api_are_other() {
        assert_eq!(label::method("GET"), "GET");
        assert_eq!(label::method("DELETE"), "DELETE");
        for odd in ["get", "BREW", "PROPFIND", ""] {
            assert_eq!(label::method(odd), "other", "{odd}");
        }
    }

    #[test]
    fn outcomes_are_codes_or_fixed_words() {
        assert_eq!(Outcome::Ok.label(), "ok");
        assert_eq!(Outcome::Error(404).label(), "404");
        assert_eq!(Outcome::Unavailable.label(), "unavailable");
        assert_eq!(Outcome::Timeout.label(), "timeout");
    }

    #[test]
    fn every_metric_is_named_once_as_prometheus_wants() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a metric is listed twice");
        for m in ALL {
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end _total",
                m.name
            );
        }
    }
}
