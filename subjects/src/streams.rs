//! JetStream streams, key/value buckets and the core-NATS delivery subjects.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv, stream, stream::StorageType};

/// Domain events of every service: `soulchat.events.<domain>.<event>`.
pub const EVENTS_STREAM: &str = "SOULCHAT_EVENTS";
pub const EVENTS_SUBJECTS: &str = "soulchat.events.>";

/// Committed chat events, one subject per conversation: `soulchat.chat.events.<conversation>`.
pub const CHAT_STREAM: &str = "SOULCHAT_CHAT";
pub const CHAT_SUBJECTS: &str = "soulchat.chat.events.>";

pub fn chat_events(conversation_id: &str) -> String {
    format!("soulchat.chat.events.{conversation_id}")
}

/// Live delivery to the gateways holding a user's sockets (core NATS, not persisted).
pub fn deliver(user_id: &str) -> String {
    format!("soulchat.deliver.{user_id}")
}

/// Live frames for every connected socket (system alerts), core NATS: every gateway subscribes.
pub const BROADCAST: &str = "soulchat.deliver.broadcast";

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

/// How long a revocation is kept: at least as long as the longest-lived refresh token.
pub const REVOCATION_RETENTION: Duration = Duration::from_secs(31 * 24 * 3600);
/// A WebSocket ticket's lifetime.
pub const WS_TICKET_TTL: Duration = Duration::from_secs(30);
/// How long a presence entry outlives the gateway that stopped refreshing it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(90);

/// Declares every stream and bucket, idempotently: each role calls it at start, so the mesh
/// works whichever role starts first. `nats/streams.md` describes the same set for operators.
pub async fn declare(js: &jetstream::Context) -> anyhow::Result<()> {
    let events = stream::Config {
        name: EVENTS_STREAM.to_owned(),
        description: Some("Domain events of every SoulChat service".to_owned()),
        subjects: vec![EVENTS_SUBJECTS.to_owned()],
        storage: StorageType::File,
        max_age: Duration::from_secs(14 * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let chat = stream::Config {
        name: CHAT_STREAM.to_owned(),
        description: Some("Committed chat events, one subject per conversation".to_owned()),
        subjects: vec![CHAT_SUBJECTS.to_owned()],
        storage: StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    for config in [events, chat] {
        let name = config.name.clone();
        js.create_or_update_stream(config).await.with_context(|| format!("declaring stream {name}"))?;
    }

    let buckets = [
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
    ];
    for config in buckets {
        let name = config.bucket.clone();
        js.create_or_update_key_value(config).await.with_context(|| format!("declaring bucket {name}"))?;
    }
    Ok(())
}

/// Queued external notification deliveries (push, email, SMS): a work queue the notification
/// workers consume, `soulchat.notification.deliveries.<channel>`. Publishing a job here (a
/// dead letter replayed by an operator, say) is how it gets delivered.
pub const DELIVERIES_STREAM: &str = "SOULCHAT_NOTIFICATION_DELIVERIES";
pub const DELIVERIES_SUBJECTS: &str = "soulchat.notification.deliveries.>";

pub fn deliveries(channel: &str) -> String {
    format!("soulchat.notification.deliveries.{channel}")
}

/// Deliveries that failed their last attempt, `soulchat.notification.dead.<channel>`, kept for
/// an operator to inspect and replay (see services/notification/README.md).
pub const DEAD_LETTER_STREAM: &str = "SOULCHAT_NOTIFICATIONS_DLQ";
pub const DEAD_LETTER_SUBJECTS: &str = "soulchat.notification.dead.>";

pub fn dead_letter(channel: &str) -> String {
    format!("soulchat.notification.dead.{channel}")
}

/// Declares the notification delivery streams, idempotently. Only the notification worker uses
/// them, so it alone declares them, beside [`declare`].
pub async fn declare_deliveries(js: &jetstream::Context) -> anyhow::Result<()> {
    let queue = stream::Config {
        name: DELIVERIES_STREAM.to_owned(),
        description: Some("Queued notification deliveries (push, email, SMS)".to_owned()),
        subjects: vec![DELIVERIES_SUBJECTS.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let dead = stream::Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        description: Some("Notification deliveries that failed every attempt".to_owned()),
        subjects: vec![DEAD_LETTER_SUBJECTS.to_owned()],
        storage: StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    for config in [queue, dead] {
        let name = config.name.clone();
        js.create_or_update_stream(config).await.with_context(|| format!("declaring stream {name}"))?;
    }
    Ok(())
}
