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
