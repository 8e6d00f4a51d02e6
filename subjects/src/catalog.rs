//! The contract as tables, for people: every operation, event, durable consumer, stream,
//! bucket and metric, rendered from the declarations themselves. The README's NATS sections are these
//! tables between `<!-- contract:NAME -->` and `<!-- /contract:NAME -->` markers, and a test
//! fails when they differ (`SOULCHAT_BLESS=1` rewrites them), so a new operation cannot be
//! forgotten there.

use std::fmt::Write;
use std::time::Duration;

use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy, StorageType};

use crate::operation::{ConsumerInfo, EventInfo, OperationInfo};
use crate::{ServiceDef, audit, chat, notification, profile, streams, user};

/// Every service with its operations, in [`crate::SERVICES`] order.
pub fn services() -> [(ServiceDef, &'static [OperationInfo]); 4] {
    [
        (user::SERVICE, user::OPERATIONS),
        (profile::SERVICE, profile::OPERATIONS),
        (chat::SERVICE, chat::OPERATIONS),
        (notification::SERVICE, notification::OPERATIONS),
    ]
}

/// Every kind of event.
pub fn events() -> Vec<EventInfo> {
    [user::EVENTS, profile::EVENTS, chat::EVENTS, notification::EVENTS, audit::EVENTS].concat()
}

/// Every durable consumer, with the service that owns it.
pub fn consumers() -> Vec<(ServiceDef, ConsumerInfo)> {
    let mut all = Vec::new();
    for (service, list) in [
        (profile::SERVICE, profile::CONSUMERS),
        (chat::SERVICE, chat::CONSUMERS),
        (notification::SERVICE, notification::CONSUMERS),
    ] {
        all.extend(list.iter().map(|c| (service, *c)));
    }
    all
}

fn doc(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// `| subject | service | request → reply | callers | what |`: callers are the broker identities
/// allowed to publish the request (`admin` always may).
pub fn operations_table() -> String {
    let mut out =
        String::from("| subject | service | request → reply | callers | what |\n| --- | --- | --- | --- | --- |\n");
    for (service, operations) in services() {
        for op in operations {
            let callers: Vec<String> = op.callers.iter().map(|c| format!("`{}`", c.name())).collect();
            let _ = writeln!(
                out,
                "| `{}` | `{}` | `{}` → `{}` | {} | {} |",
                op.subject,
                service.name,
                op.request,
                op.response,
                if callers.is_empty() { "none".to_owned() } else { callers.join(", ") },
                doc(op.doc)
            );
        }
    }
    out
}

/// `| subject | stream | payload | what |`.
pub fn events_table() -> String {
    let mut out = String::from("| subject | stream | payload | what |\n| --- | --- | --- | --- |\n");
    for e in events() {
        let _ = writeln!(out, "| `{}` | `{}` | `{}` | {} |", e.subject, e.stream, e.payload, doc(e.doc));
    }
    out
}

/// `| durable consumer | service | stream | filter |`.
pub fn consumers_table() -> String {
    let mut out = String::from("| durable consumer | service | stream | filter |\n| --- | --- | --- | --- |\n");
    for (service, c) in consumers() {
        let _ = writeln!(out, "| `{}` | `{}` | `{}` | `{}` |", c.durable, service.name, c.stream, c.subject);
    }
    out
}

fn days(age: Duration) -> String {
    match age.as_secs() {
        0 => "no age limit".to_owned(),
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s => format!("{s} s"),
    }
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b < 0 => "no size limit".to_owned(),
        b if b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

/// A stream's limits beyond its age: size, message count, message size, and what a full one does.
fn limits(s: &async_nats::jetstream::stream::Config) -> String {
    let mut out = size(s.max_bytes);
    if s.max_messages > 0 {
        let _ = write!(out, ", {} messages", s.max_messages);
    }
    let _ = write!(out, ", {} a message", size(s.max_message_size.into()));
    out.push_str(match s.discard {
        DiscardPolicy::Old => ", full: drops the oldest",
        DiscardPolicy::New => ", full: refuses new",
    });
    out
}

fn storage(s: StorageType) -> &'static str {
    match s {
        StorageType::File => "file",
        StorageType::Memory => "memory",
    }
}

/// `| name | kind | subjects | storage, retention | what |` for streams and buckets.
pub fn streams_table() -> String {
    let mut out =
        String::from("| name | kind | subjects | storage, retention | what |\n| --- | --- | --- | --- | --- |\n");
    for s in streams::stream_configs().into_iter().chain(streams::delivery_stream_configs()) {
        let retention = match s.retention {
            RetentionPolicy::WorkQueue => "work queue (a job leaves when acknowledged)".to_owned(),
            _ => days(s.max_age),
        };
        let _ = writeln!(
            out,
            "| `{}` | stream | `{}` | {}, {}, {}, {} s duplicate window | {} |",
            s.name,
            s.subjects.join("`, `"),
            storage(s.storage),
            retention,
            limits(&s),
            s.duplicate_window.as_secs(),
            doc(s.description.as_deref().unwrap_or(""))
        );
    }
    for b in streams::bucket_configs() {
        let _ = writeln!(
            out,
            "| `{}` | key/value | | {}, entries live {} | {} |",
            b.bucket,
            storage(b.storage),
            days(b.max_age),
            doc(&b.description)
        );
    }
    for o in streams::object_store_configs() {
        let bucket = o.name.trim_start_matches("OBJ_");
        let _ = writeln!(
            out,
            "| `{bucket}` | object store | | {}, {}, full: refuses new | {} |",
            storage(o.storage),
            size(o.max_bytes),
            doc(o.description.as_deref().unwrap_or(""))
        );
    }
    out
}

/// `| metric | type | labels | what |`: every metric of [`crate::metrics::ALL`].
pub fn metrics_table() -> String {
    use crate::metrics::Kind;
    let mut out = String::from("| metric | type | labels | what |\n| --- | --- | --- | --- |\n");
    for m in crate::metrics::ALL {
        let kind = match m.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
        let _ = writeln!(out, "| `{}` | {kind} | {} | {} |", m.name, labels.join(", "), doc(m.help));
    }
    out
}

/// `readme` with every generated section replaced by what the contract says today.
pub fn render_readme(readme: &str) -> String {
    type Render = fn() -> String;
    let sections: [(&str, Render); 5] = [
        ("operations", operations_table),
        ("events", events_table),
        ("consumers", consumers_table),
        ("streams", streams_table),
        ("metrics", metrics_table),
    ];
    let mut out = readme.to_owned();
    for (name, table) in sections {
        let (open, close) = (format!("<!-- contract:{name} -->\n"), format!("<!-- /contract:{name} -->"));
        if let (Some(start), Some(end)) = (out.find(&open), out.find(&close)) {
            let start = start + open.len();
            if start <= end {
                out.replace_range(start..end, &table());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_is_listed_once() {
        let table = operations_table();
        let mut subjects: Vec<&str> = services().iter().flat_map(|(_, ops)| ops.iter().map(|o| o.subject)).collect();
        let count = subjects.len();
        subjects.sort_unstable();
        subjects.dedup();
        assert_eq!(subjects.len(), count, "a subject is declared twice");
        assert!(table.contains("`soulchat.user.v1.register`"));
        assert!(table.contains("`soulchat.chat.v1.health`"));
    }
}
