//! Who may do what on the broker, generated from the contract.
//!
//! Workers trust the `Soulchat-User-Id` header, so whoever may publish a request may act as any
//! user: the broker must hold each role to exactly what it does. Every role connects as its own
//! [`Identity`] (an NKey, generated per role by `soulchat up` and by the tests), and its
//! [`permissions`] follow from the contract: it publishes only the requests the operations list
//! it as a caller of ([`crate::Operation::CALLERS`]) and the events its domain owns, subscribes
//! only to the requests it serves (in its queue group), the events it consumes and its own inbox
//! (`_INBOX_<name>`, so no role reads another's replies), answers only through
//! `allow_responses`, and reaches JetStream only for the exact streams, consumers and buckets it
//! uses. Creating, changing, purging and deleting streams is the provisioning identity's
//! (`admin`: [`crate::streams::provision`], run by `soulchat up` and `soulchat migrate`), except
//! the memory buckets a server restart loses, which the roles that use them declare again.
//! [`authorization`] renders it all as nats-server configuration (`nats/authorization.conf`).

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::operation::{ConsumerInfo, EventInfo, OperationInfo};
use crate::streams::{self, ATTACHMENTS_BUCKET, CHAT_STREAM, PRESENCE_BUCKET, REVOKED_BUCKET, WS_TICKETS_BUCKET};
use crate::{SERVICES, ServiceDef, audit, chat, notification, profile, user};

/// Who connects to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// The HTTP and WebSocket edge.
    Gateway,
    /// The workers, one per service of [`crate::SERVICES`].
    User,
    Profile,
    Chat,
    Notification,
    /// Operators, read-only: the service API and stream, consumer and bucket info.
    Ops,
    /// Everything: provisioning (streams and buckets) and repairs.
    Admin,
}

impl Identity {
    /// Every identity, roles first.
    pub const ALL: [Identity; 7] = [
        Identity::Gateway,
        Identity::User,
        Identity::Profile,
        Identity::Chat,
        Identity::Notification,
        Identity::Ops,
        Identity::Admin,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Identity::Gateway => "gateway",
            Identity::User => "user",
            Identity::Profile => "profile",
            Identity::Chat => "chat",
            Identity::Notification => "notification",
            Identity::Ops => "ops",
            Identity::Admin => "admin",
        }
    }

    /// The worker identity of a service.
    pub fn worker(def: ServiceDef) -> Option<Identity> {
        Identity::ALL.into_iter().find(|i| i.service() == Some(def))
    }

    /// The service a worker identity serves.
    pub fn service(self) -> Option<ServiceDef> {
        SERVICES.into_iter().find(|def| def.domain == self.name())
    }

    /// Its replies arrive under `<prefix>.>`, which only it may subscribe to.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name())
    }

    /// The environment variable the committed server configuration reads its public key from.
    pub fn key_variable(self) -> String {
        format!("SOULCHAT_NATS_{}_NKEY", self.name().to_uppercase())
    }

    /// Its NKey seed file in a key directory (`<data dir>/nats/<name>.nk`).
    pub fn seed_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.nk", self.name()))
    }
}

/// What an identity may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: BTreeSet<String>,
    /// Exceptions to `publish` (another role's durable consumer under a granted wildcard).
    pub publish_deny: BTreeSet<String>,
    /// A subject, or `subject queue` for a queue subscription in that group only.
    pub subscribe: BTreeSet<String>,
    /// It may answer a request it received, once, whatever the reply subject.
    pub allow_responses: bool,
}

/// What an identity is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Everything,
    Only(Permissions),
}

/// The contract of a worker identity's service.
fn contract(identity: Identity) -> (&'static [OperationInfo], &'static [EventInfo], &'static [ConsumerInfo]) {
    match identity {
        Identity::User => (user::OPERATIONS, user::EVENTS, &[]),
        Identity::Profile => (profile::OPERATIONS, profile::EVENTS, profile::CONSUMERS),
        Identity::Chat => (chat::OPERATIONS, chat::EVENTS, chat::CONSUMERS),
        Identity::Notification => (notification::OPERATIONS, notification::EVENTS, notification::CONSUMERS),
        Identity::Gateway | Identity::Ops | Identity::Admin => (&[], &[], &[]),
    }
}

/// Who publishes live frames to the gateways (`soulchat.deliver.>`): the gateway itself
/// (typing, presence, read receipts) and the notification worker (notifications, alerts).
const LIVE_PUBLISHERS: [Identity; 2] = [Identity::Gateway, Identity::Notification];

/// Key/value use beyond the contract's events and consumers: what each role reads (direct
/// get), writes (put, delete) and watches (an ordered consumer), by bucket.
struct Buckets {
    reads: &'static [&'static str],
    writes: &'static [&'static str],
    watches: &'static [&'static str],
}

fn buckets(identity: Identity) -> Buckets {
    match identity {
        // Presence and WebSocket tickets are the gateway's; it follows revocations.
        Identity::Gateway => Buckets {
            reads: &[PRESENCE_BUCKET, WS_TICKETS_BUCKET],
            writes: &[PRESENCE_BUCKET, WS_TICKETS_BUCKET],
            watches: &[REVOKED_BUCKET],
        },
        // Logout, refresh reuse, password changes and deletions revoke tokens.
        Identity::User => Buckets { reads: &[], writes: &[REVOKED_BUCKET], watches: &[] },
        // Who is online decides whether a message becomes a push.
        Identity::Notification => Buckets { reads: &[], writes: &[], watches: &[PRESENCE_BUCKET] },
        _ => Buckets { reads: &[], writes: &[], watches: &[] },
    }
}

/// Object stores a role uses: the gateway stores and reads attachments; the chat worker checks
/// who uploaded one, lists them and deletes them (a delete purges the object's chunks).
struct Objects {
    reads: &'static [&'static str],
    writes: &'static [&'static str],
    deletes: &'static [&'static str],
}

fn objects(identity: Identity) -> Objects {
    let attachments: &'static [&'static str] = &[ATTACHMENTS_BUCKET];
    match identity {
        Identity::Gateway => Objects { reads: attachments, writes: attachments, deletes: &[] },
        Identity::Chat => Objects { reads: attachments, writes: &[], deletes: attachments },
        _ => Objects { reads: &[], writes: &[], deletes: &[] },
    }
}

/// Streams read through an ordered (ephemeral) consumer: the gateway's chat feed, object reads
/// and listings.
fn ordered_streams(identity: Identity) -> Vec<String> {
    let mut streams: Vec<String> = buckets(identity).watches.iter().map(|b| kv_stream(b)).collect();
    streams.extend(objects(identity).reads.iter().map(|b| object_stream(b)));
    if identity == Identity::Gateway {
        streams.push(CHAT_STREAM.to_owned());
    }
    streams
}

/// The stream behind a key/value bucket.
pub fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The stream behind an object store.
pub fn object_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// The streams every role checks at start ([`streams::declare`]), and those of the delivery
/// queue, which the notification worker checks as well.
fn declared_streams(identity: Identity) -> Vec<String> {
    let mut names: Vec<String> = streams::stream_configs().into_iter().map(|s| s.name).collect();
    names.extend(streams::bucket_configs().into_iter().map(|b| kv_stream(&b.bucket)));
    names.extend(streams::object_store_configs().into_iter().map(|s| s.name));
    if identity == Identity::Notification {
        names.extend(streams::delivery_stream_configs().into_iter().map(|s| s.name));
    }
    names
}

/// Every durable consumer of the contract, whoever owns it.
fn all_durables() -> Vec<ConsumerInfo> {
    crate::catalog::consumers().into_iter().map(|(_, c)| c).collect()
}

/// What `identity` may do, from the contract.
pub fn permissions(identity: Identity) -> Grant {
    let mut p = Permissions::default();
    match identity {
        Identity::Admin => return Grant::Everything,
        Identity::Ops => {
            p.subscribe.insert(format!("{}.>", identity.inbox_prefix()));
            for subject in [
                "$SRV.>",
                "$JS.API.INFO",
                "$JS.API.STREAM.NAMES",
                "$JS.API.STREAM.LIST",
                "$JS.API.STREAM.INFO.*",
                "$JS.API.CONSUMER.NAMES.*",
                "$JS.API.CONSUMER.LIST.*",
                "$JS.API.CONSUMER.INFO.*.*",
            ] {
                p.publish.insert(subject.to_owned());
            }
            return Grant::Only(p);
        }
        _ => {}
    }
    p.subscribe.insert(format!("{}.>", identity.inbox_prefix()));
    // Requests it makes.
    for (_, operations) in crate::catalog::services() {
        for op in operations.iter().filter(|op| op.callers.contains(&identity)) {
            p.publish.insert(op.subject.to_owned());
        }
    }
    // Requests it serves, in its queue group, and the service API.
    let (operations, events, consumers) = contract(identity);
    if let Some(def) = identity.service() {
        for op in operations {
            p.subscribe.insert(format!("{} {}", op.subject, def.name));
        }
        p.subscribe.insert("$SRV.*".to_owned());
        p.subscribe.insert(format!("$SRV.*.{}", def.name));
        p.subscribe.insert(format!("$SRV.*.{}.*", def.name));
        p.allow_responses = true;
    }
    // Events it owns: its outbox, the chat log, the delivery queue.
    for event in events {
        p.publish.insert(event.subject.to_owned());
    }
    let audited = audit::EVENTS.iter().filter(|e| audit::publisher(e.subject) == identity);
    p.publish.extend(audited.map(|e| e.subject.to_owned()));
    if identity == Identity::Notification {
        p.publish.insert(streams::DEAD_LETTER_SUBJECTS.to_owned());
    }
    if LIVE_PUBLISHERS.contains(&identity) {
        p.publish.insert(streams::DELIVER_ALL.to_owned());
    }
    if identity == Identity::Gateway {
        p.subscribe.insert(streams::DELIVER_ALL.to_owned());
    }
    // JetStream: the streams it checks at start.
    for stream in declared_streams(identity) {
        p.publish.insert(format!("$JS.API.STREAM.INFO.{stream}"));
    }
    // Its durable consumers: look up, create (with its filter), pull, acknowledge.
    for c in consumers {
        p.publish.insert(format!("$JS.API.CONSUMER.INFO.{}.{}", c.stream, c.durable));
        p.publish.insert(format!("$JS.API.CONSUMER.CREATE.{}.{}.{}", c.stream, c.durable, c.subject));
        p.publish.insert(format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", c.stream, c.durable));
        p.publish.insert(format!("$JS.ACK.{}.{}.>", c.stream, c.durable));
    }
    // Ordered consumers (KV watches, the chat feed): created unnamed, recreated under a new
    // name after a gap, the old one deleted; flow control answered. Never someone's durable.
    for stream in ordered_streams(identity) {
        p.publish.insert(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        p.publish.insert(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        p.publish.insert(format!("$JS.API.CONSUMER.DELETE.{stream}.*"));
        p.publish.insert(format!("$JS.FC.{stream}.>"));
        p.allow_responses = true;
        for c in all_durables().into_iter().filter(|c| c.stream == stream) {
            p.publish_deny.insert(format!("$JS.API.CONSUMER.CREATE.{stream}.{}", c.durable));
            p.publish_deny.insert(format!("$JS.API.CONSUMER.CREATE.{stream}.{}.>", c.durable));
            p.publish_deny.insert(format!("$JS.API.CONSUMER.DELETE.{stream}.{}", c.durable));
        }
    }
    let uses = buckets(identity);
    for bucket in uses.reads {
        p.publish.insert(format!("$JS.API.DIRECT.GET.{}", kv_stream(bucket)));
        p.publish.insert(format!("$JS.API.DIRECT.GET.{}.>", kv_stream(bucket)));
    }
    for bucket in uses.writes {
        p.publish.insert(format!("$KV.{bucket}.>"));
    }
    // Objects: metadata read directly, chunks and metadata published (a delete is a metadata
    // rollup), chunks purged on delete.
    let objects = objects(identity);
    for bucket in objects.reads {
        p.publish.insert(format!("$JS.API.DIRECT.GET.{}", object_stream(bucket)));
        p.publish.insert(format!("$JS.API.DIRECT.GET.{}.>", object_stream(bucket)));
    }
    for bucket in objects.writes {
        p.publish.insert(format!("$O.{bucket}.>"));
    }
    for bucket in objects.deletes {
        p.publish.insert(format!("$O.{bucket}.M.>"));
        p.publish.insert(format!("$JS.API.STREAM.PURGE.{}", object_stream(bucket)));
    }
    let redeclared = redeclares(identity);
    for config in &redeclared {
        p.publish.insert(format!("$JS.API.STREAM.CREATE.{}", kv_stream(&config.bucket)));
    }
    if !redeclared.is_empty() {
        // Creating a bucket starts with the account's limits.
        p.publish.insert("$JS.API.INFO".to_owned());
    }
    Grant::Only(p)
}

/// The buckets `identity` creates when it finds them missing ([`streams::declare`]): the memory
/// buckets it uses, which a server restart loses. Everything else is provisioned by `admin`.
pub fn redeclares(identity: Identity) -> Vec<async_nats::jetstream::kv::Config> {
    let uses = buckets(identity);
    let used = [uses.reads, uses.writes, uses.watches].concat();
    streams::bucket_configs()
        .into_iter()
        .filter(|config| {
            used.contains(&config.bucket.as_str())
                && config.storage == async_nats::jetstream::stream::StorageType::Memory
        })
        .collect()
}

fn list(out: &mut String, indent: &str, items: &BTreeSet<String>) {
    out.push_str("[\n");
    for item in items {
        let _ = writeln!(out, "{indent}  \"{item}\"");
    }
    let _ = write!(out, "{indent}]");
}

/// The nats-server `authorization` block for `users`: each identity with its public key, as
/// written (a quoted key, or `$VARIABLE` for the committed form), and its permissions.
pub fn authorization(users: &[(Identity, String)]) -> String {
    let mut out = String::from("authorization {\n  users: [\n");
    for (identity, key) in users {
        let _ = writeln!(out, "    # {}", identity.name());
        let _ = writeln!(out, "    {{\n      nkey: {key}");
        if let Grant::Only(p) = permissions(*identity) {
            out.push_str("      permissions: {\n        publish: {\n          allow: ");
            list(&mut out, "          ", &p.publish);
            out.push('\n');
            if !p.publish_deny.is_empty() {
                out.push_str("          deny: ");
                list(&mut out, "          ", &p.publish_deny);
                out.push('\n');
            }
            out.push_str("        }\n        subscribe: {\n          allow: ");
            list(&mut out, "          ", &p.subscribe);
            out.push_str("\n        }\n");
            if p.allow_responses {
                out.push_str("        allow_responses: true\n");
            }
            out.push_str("      }\n");
        }
        out.push_str("    }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

/// The committed form (`nats/authorization.conf`, `soulchat nats-config`): every identity, its
/// public key read from `$SOULCHAT_NATS_<NAME>_NKEY` in the server's environment.
pub fn committed_authorization() -> String {
    let users: Vec<(Identity, String)> =
        Identity::ALL.into_iter().map(|i| (i, format!("${}", i.key_variable()))).collect();
    let mut out = String::from(
        "# Who may do what on SoulChat's NATS: generated from subjects/ by `soulchat nats-config`\n\
         # (subjects/src/broker.rs says why); a test fails when this file differs. Included by\n\
         # server.conf. Each identity's public NKey comes from the server's environment\n\
         # (SOULCHAT_NATS_<NAME>_NKEY; `soulchat nats-keys <dir>` prints them).\n\n",
    );
    out.push_str(&authorization(&users));
    out
}

/// One NKey seed file per identity in `dir` (`<name>.nk`, mode 0600), generated once and kept,
/// and their public keys.
pub fn ensure_keys(dir: &Path) -> anyhow::Result<Vec<(Identity, String)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Identity::ALL
        .into_iter()
        .map(|identity| {
            let path = identity.seed_file(dir);
            let pair = match std::fs::read_to_string(&path) {
                Ok(seed) => nkeys::KeyPair::from_seed(seed.trim())
                    .with_context(|| format!("{} is not an NKey seed", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let pair = nkeys::KeyPair::new_user();
                    write_secret(&path, &pair.seed().context("a new key has a seed")?)?;
                    pair
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            Ok((identity, format!("\"{}\"", pair.public_key())))
        })
        .collect()
}

fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_a_worker_identity() {
        for def in SERVICES {
            assert_eq!(Identity::worker(def).and_then(Identity::service), Some(def));
        }
    }

    #[test]
    fn only_the_gateway_makes_public_requests_and_no_one_forges_elsewhere() {
        let Grant::Only(profile) = permissions(Identity::Profile) else { panic!("profile is limited") };
        assert!(!profile.publish.iter().any(|s| s.starts_with("soulchat.user.") || s.starts_with("soulchat.chat.")));
        let Grant::Only(gateway) = permissions(Identity::Gateway) else { panic!("gateway is limited") };
        assert!(gateway.publish.contains("soulchat.user.v1.login"));
        assert!(!gateway.publish.contains("soulchat.profile.v1.create"));
        assert!(!gateway.publish.iter().any(|s| s.starts_with("$KV.soulchat_revoked")));
        let Grant::Only(user) = permissions(Identity::User) else { panic!("user is limited") };
        assert!(user.publish.contains("soulchat.profile.v1.create"));
        assert!(user.subscribe.contains("soulchat.user.v1.login soulchat-user"));
    }

    #[test]
    fn keys_are_kept_across_restarts_and_private() {
        let dir = tempfile_dir();
        let first = ensure_keys(&dir).unwrap();
        let second = ensure_keys(&dir).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(Identity::Ops.seed_file(&dir)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join(format!("soulchat-keys-{}", uuid::Uuid::new_v4()))
    }
}
