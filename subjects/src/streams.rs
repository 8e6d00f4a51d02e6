//! JetStream streams, key/value buckets and the core-NATS delivery subjects.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv, stream, stream::DiscardPolicy, stream::StorageType};

use crate::broker::Identity;

/// Domain events of every service: `soulchat.events.<domain>.<event>`.
pub const EVENTS_STREAM: &str = "SOULCHAT_EVENTS";
pub const EVENTS_SUBJECTS: &str = "soulchat.events.>";

/// The subject prefixes below, each written once; the constants and builders share them.
macro_rules! chat_events_prefix {
    () => {
        "soulchat.chat.events"
    };
}
macro_rules! deliver_prefix {
    () => {
        "soulchat.deliver"
    };
}
macro_rules! deliveries_prefix {
    () => {
        "soulchat.notification.deliveries"
    };
}
macro_rules! dead_letter_prefix {
    () => {
        "soulchat.notification.dead"
    };
}
macro_rules! audit_prefix {
    () => {
        "soulchat.audit"
    };
}
pub(crate) use {audit_prefix, deliveries_prefix};

/// Committed chat events, one subject per conversation: `soulchat.chat.events.<conversation>`.
pub const CHAT_STREAM: &str = "SOULCHAT_CHAT";
pub const CHAT_SUBJECTS: &str = concat!(chat_events_prefix!(), ".>");

pub fn chat_events(conversation_id: &str) -> String {
    format!(concat!(chat_events_prefix!(), ".{}"), conversation_id)
}

/// Security events (`soulchat.audit.<kind>`, see [`crate::audit`]), kept [`AUDIT_RETENTION`]
/// unless `SOULCHAT_AUDIT_RETENTION` says otherwise.
pub const AUDIT_STREAM: &str = "SOULCHAT_AUDIT";
pub const AUDIT_SUBJECTS: &str = concat!(audit_prefix!(), ".>");
pub const AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Live delivery to the gateways holding a user's sockets (core NATS, not persisted).
pub fn deliver(user_id: &str) -> String {
    format!(concat!(deliver_prefix!(), ".{}"), user_id)
}

/// Every live delivery subject, for permissions.
pub const DELIVER_ALL: &str = concat!(deliver_prefix!(), ".>");

/// Live frames for every connected socket (system alerts), core NATS: every gateway subscribes.
pub const BROADCAST: &str = concat!(deliver_prefix!(), ".broadcast");

/// Revoked access tokens (`jti.<jti>`) and refresh families (`fam.<family>`), read by every
/// gateway replica. Entries outlive the longest token they can revoke.
pub const REVOKED_BUCKET: &str = "soulchat_revoked";

pub fn revoked_token_key(jti: &str) -> String {
    format!("jti.{jti}")
}

pub fn revoked_family_key(family: &str) -> String {
    format!("fam.{family}")
}

/// Online users (memory storage; a TTL cleans up after a gateway that died).
pub const PRESENCE_BUCKET: &str = "soulchat_presence";

/// Single-use WebSocket tickets for browsers.
pub const WS_TICKETS_BUCKET: &str = "soulchat_ws_tickets";

/// Uploaded attachments, one object per upload named by its id: the gateway stores and serves
/// them, the chat worker deletes them (with the last message that used one, or unused).
pub const ATTACHMENTS_BUCKET: &str = "soulchat_attachments";
/// An attachment's metadata entries: the uploader's user id, the file name and the sniffed type.
pub const ATTACHMENT_UPLOADER: &str = "uploader";
pub const ATTACHMENT_NAME: &str = "name";
pub const ATTACHMENT_TYPE: &str = "content-type";

/// How long a revocation is kept: at least as long as the longest-lived refresh token.
pub const REVOCATION_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);
/// A WebSocket ticket's lifetime.
pub const WS_TICKET_TTL: Duration = Duration::from_secs(30);
/// How long a presence entry outlives the gateway that stopped refreshing it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(90);

const MIB: i64 = 1024 * 1024;
const GIB: i64 = 1024 * MIB;
/// The largest message a stream takes: the server's own default `max_payload`, stated so that a
/// server configured larger does not let a stream's messages grow unseen.
const MAX_MESSAGE: i32 = MIB as i32;

/// The shared streams: domain events and committed chat events.
///
/// Every stream is bounded by age and by size (the sizes are reserved from the server's
/// JetStream store, so together they must fit in it: 8.5 GiB in all with the attachments, as a
/// small volume allows).
/// What happens when one is full is chosen per stream.
pub fn stream_configs() -> Vec<stream::Config> {
    vec![
        stream::Config {
            name: EVENTS_STREAM.to_owned(),
            description: Some("Domain events of every SoulChat service".to_owned()),
            subjects: vec![EVENTS_SUBJECTS.to_owned()],
            storage: StorageType::File,
            max_age: Duration::from_secs(14 * 24 * 3600),
            max_bytes: GIB,
            max_message_size: MAX_MESSAGE,
            // Full, it refuses new events rather than drop old ones a consumer may not have
            // applied yet: the publisher is an outbox relay, which keeps the event and retries
            // (its backlog shows in `soulchat_relay_backlog`).
            discard: DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: CHAT_STREAM.to_owned(),
            description: Some("Committed chat events, one subject per conversation".to_owned()),
            subjects: vec![CHAT_SUBJECTS.to_owned()],
            storage: StorageType::File,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 4 * GIB,
            max_message_size: MAX_MESSAGE,
            // Full, it drops the oldest: it carries fan-out and reactions to live traffic, the
            // chat database is the record (history and resume read it), and refusing would stall
            // every conversation behind the relay.
            discard: DiscardPolicy::Old,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: AUDIT_STREAM.to_owned(),
            description: Some("Security events: registrations, sign-ins, credential and account changes".to_owned()),
            subjects: vec![AUDIT_SUBJECTS.to_owned()],
            storage: StorageType::File,
            max_age: AUDIT_RETENTION,
            max_bytes: GIB,
            max_message_size: MAX_MESSAGE,
            // Full, it drops the oldest: what is happening now must be recorded, and a flood
            // should not be able to silence the log (the size is alerted on long before).
            discard: DiscardPolicy::Old,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
    ]
}

/// The key/value buckets.
pub fn bucket_configs() -> Vec<kv::Config> {
    vec![
        kv::Config {
            bucket: REVOKED_BUCKET.to_owned(),
            description: "Revoked access tokens and refresh families".to_owned(),
            history: 1,
            max_age: REVOCATION_RETENTION,
            storage: StorageType::File,
            ..Default::default()
        },
        kv::Config {
            bucket: PRESENCE_BUCKET.to_owned(),
            description: "Online users".to_owned(),
            history: 1,
            max_age: PRESENCE_TTL,
            storage: StorageType::Memory,
            ..Default::default()
        },
        kv::Config {
            bucket: WS_TICKETS_BUCKET.to_owned(),
            description: "Single-use WebSocket tickets".to_owned(),
            history: 1,
            max_age: WS_TICKET_TTL,
            storage: StorageType::Memory,
            ..Default::default()
        },
    ]
}

/// The object stores, as the streams behind them (`OBJ_<bucket>` on `$O.<bucket>.>`, as async-nats
/// creates them), so that provisioning can update one like any stream.
pub fn object_store_configs() -> Vec<stream::Config> {
    let bucket = ATTACHMENTS_BUCKET;
    vec![stream::Config {
        name: crate::broker::object_stream(bucket),
        description: Some("Uploaded attachments".to_owned()),
        subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
        storage: StorageType::File,
        max_bytes: 2 * GIB,
        // Full, it refuses new uploads rather than drop the chunks of attachments that messages
        // still show.
        discard: DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        ..Default::default()
    }]
}

/// How many copies JetStream keeps of every stream and bucket (`SOULCHAT_NATS_REPLICAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replicas {
    /// Three on a cluster that advertises three or more servers, one otherwise.
    #[default]
    Auto,
    Exactly(usize),
}

impl std::str::FromStr for Replicas {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Replicas::Auto),
            // JetStream's own bounds.
            n => match n.parse() {
                Ok(n @ 1..=5) => Ok(Replicas::Exactly(n)),
                _ => Err(format!("{n:?}: expected `auto` or 1 to 5")),
            },
        }
    }
}

impl Replicas {
    /// The count for the server `client` is connected to. A cluster's servers advertise each
    /// other's client URLs; one that does not (`no_advertise`) needs the setting.
    pub fn resolve(self, client: &async_nats::Client) -> usize {
        match self {
            Replicas::Exactly(n) => n,
            Replicas::Auto => {
                let info = client.server_info();
                if info.cluster.is_some() && info.connect_urls.len() >= 3 { 3 } else { 1 }
            }
        }
    }
}

/// Makes sure every shared stream and bucket exists (never changing what is there): each role
/// calls it at start and after every reconnect, as `identity`. On a broker with permissions, a
/// role creates only the memory buckets it uses, which a server restart loses
/// ([`crate::broker::redeclares`]); everything else must have been [`provision`]ed. Without an
/// identity (a server without authentication) whatever is missing is created. `nats/streams.md`
/// describes the same set for operators.
pub async fn declare(js: &jetstream::Context, identity: Option<Identity>) -> anyhow::Result<()> {
    declare_streams(js, stream_configs()).await?;
    if identity.is_none() {
        declare_streams(js, object_store_configs()).await?;
    } else {
        for config in object_store_configs() {
            if missing(js, &config.name).await? {
                anyhow::bail!("object store {} is missing: provision it with `soulchat migrate` as admin", config.name);
            }
        }
    }
    let creatable =
        identity.map(|identity| crate::broker::redeclares(identity).into_iter().map(|c| c.bucket).collect());
    let replicas = Replicas::Auto.resolve(&js.client());
    for config in bucket_configs() {
        let name = config.bucket.clone();
        let ours = creatable.as_ref().is_none_or(|names: &Vec<String>| names.contains(&name));
        if !missing(js, &format!("KV_{name}")).await? {
            continue;
        }
        if ours {
            let config = kv::Config { num_replicas: replicas, ..config };
            js.create_key_value(config).await.with_context(|| format!("declaring bucket {name}"))?;
        } else if config.storage == StorageType::File {
            anyhow::bail!("bucket {name} is missing: provision it with `soulchat migrate` as admin");
        }
    }
    Ok(())
}

/// Declares again, after every reconnect, what a server restart may have lost: the memory buckets
/// (tickets, presence) are gone when a single server restarts, and nothing else would bring them
/// back until some role restarted. Retries with backoff while JetStream is still recovering.
/// Ends when the connection (the sender of `disruptions`) is gone.
pub async fn declare_after_reconnects(
    js: jetstream::Context,
    identity: Option<Identity>,
    mut disruptions: crate::connect::Disruptions,
) {
    while disruptions.changed().await.is_ok() {
        let mut wait = Duration::from_millis(100);
        while let Err(e) = declare(&js, identity).await {
            tracing::warn!("declaring streams and buckets after a reconnect: {e:#}; retrying in {wait:?}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

/// What provisioning may be told: `SOULCHAT_AUDIT_RETENTION` and `SOULCHAT_NATS_REPLICAS`.
#[derive(Debug, Clone, Copy)]
pub struct Provisioning {
    pub audit_retention: Duration,
    pub replicas: Replicas,
}

impl Default for Provisioning {
    fn default() -> Self {
        Provisioning { audit_retention: AUDIT_RETENTION, replicas: Replicas::Auto }
    }
}

/// Creates or updates every stream and bucket to what the contract says: the provisioning step
/// (`soulchat up`, `soulchat migrate`, the tests), run as `admin`, the one identity allowed to
/// change streams.
pub async fn provision(js: &jetstream::Context) -> anyhow::Result<()> {
    provision_with(js, Provisioning::default()).await
}

/// [`provision`] with settings.
pub async fn provision_with(js: &jetstream::Context, settings: Provisioning) -> anyhow::Result<()> {
    let replicas = settings.replicas.resolve(&js.client());
    for mut config in stream_configs().into_iter().chain(delivery_stream_configs()).chain(object_store_configs()) {
        if config.name == AUDIT_STREAM {
            config.max_age = settings.audit_retention;
        }
        config.num_replicas = replicas;
        let name = config.name.clone();
        js.create_or_update_stream(config).await.with_context(|| format!("provisioning stream {name}"))?;
    }
    for config in bucket_configs() {
        let name = config.bucket.clone();
        let config = kv::Config { num_replicas: replicas, ..config };
        js.create_or_update_key_value(config).await.with_context(|| format!("provisioning bucket {name}"))?;
    }
    Ok(())
}

async fn missing(js: &jetstream::Context, stream: &str) -> anyhow::Result<bool> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match js.get_stream(stream).await {
        Ok(_) => Ok(false),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
            Ok(true)
        }
        Err(e) => Err(e).with_context(|| format!("looking up stream {stream}")),
    }
}

async fn declare_streams(js: &jetstream::Context, configs: Vec<stream::Config>) -> anyhow::Result<()> {
    for config in configs {
        let name = config.name.clone();
        if missing(js, &name).await? {
            js.create_stream(config).await.with_context(|| {
                format!("declaring stream {name} (missing: provision it with `soulchat migrate` as admin)")
            })?;
        }
    }
    Ok(())
}

/// Queued external notification deliveries (push, email, SMS): a work queue the notification
/// workers consume, `soulchat.notification.deliveries.<channel>`. Publishing a job here (a
/// dead letter replayed by an operator, say) is how it gets delivered.
pub const DELIVERIES_STREAM: &str = "SOULCHAT_NOTIFICATION_DELIVERIES";
pub const DELIVERIES_SUBJECTS: &str = concat!(deliveries_prefix!(), ".>");

pub fn deliveries(channel: &str) -> String {
    format!(concat!(deliveries_prefix!(), ".{}"), channel)
}

/// Deliveries that failed their last attempt, `soulchat.notification.dead.<channel>`, kept for
/// an operator to inspect and replay (see services/notification/README.md).
pub const DEAD_LETTER_STREAM: &str = "SOULCHAT_NOTIFICATIONS_DLQ";
pub const DEAD_LETTER_SUBJECTS: &str = concat!(dead_letter_prefix!(), ".>");

pub fn dead_letter(channel: &str) -> String {
    format!(concat!(dead_letter_prefix!(), ".{}"), channel)
}

/// The notification delivery streams: the work queue and its dead letters.
pub fn delivery_stream_configs() -> Vec<stream::Config> {
    vec![
        stream::Config {
            name: DELIVERIES_STREAM.to_owned(),
            description: Some("Queued notification deliveries (push, email, SMS)".to_owned()),
            subjects: vec![DELIVERIES_SUBJECTS.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_bytes: 256 * MIB,
            max_messages: 1_000_000,
            max_message_size: MAX_MESSAGE,
            // Full, it refuses new jobs rather than silently lose queued ones: the publisher is
            // the notification outbox relay, which keeps the job and retries, so a backlog waits
            // in the database instead.
            discard: DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
        stream::Config {
            name: DEAD_LETTER_STREAM.to_owned(),
            description: Some("Notification deliveries that failed every attempt".to_owned()),
            subjects: vec![DEAD_LETTER_SUBJECTS.to_owned()],
            storage: StorageType::File,
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 256 * MIB,
            max_message_size: MAX_MESSAGE,
            // Full, it drops the oldest: refusing would leave the failed delivery being retried
            // (the worker naks until the dead letter is stored), while the oldest dead letters
            // are the least likely to be replayed.
            discard: DiscardPolicy::Old,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        },
    ]
}

/// Makes sure the notification delivery streams exist, as [`declare`] does. Only the
/// notification worker uses them, so it alone declares them.
pub async fn declare_deliveries(js: &jetstream::Context) -> anyhow::Result<()> {
    declare_streams(js, delivery_stream_configs()).await
}
