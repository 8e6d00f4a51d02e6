//! Live in-app delivery: a stored notification leaves as a ready WebSocket frame on core NATS,
//! to `soulchat.deliver.<user_id>` (the gateways holding the user's sockets) or, for a system
//! alert, to the broadcast subject every gateway forwards to every socket. The gateway passes
//! the bytes on verbatim, so the frame's shape is decided here, once.

use std::time::{Duration, UNIX_EPOCH};

use soulchat_subjects::notification::messages::Notification;
use soulchat_subjects::streams;

/// `{"type":"notification","notification":{…,"created_at":"<RFC 3339 UTC, millis>"}}`.
pub fn frame(n: &Notification) -> bytes::Bytes {
    let created_at = UNIX_EPOCH + Duration::from_millis(u64::try_from(n.created_at_ms).unwrap_or(0));
    let frame = serde_json::json!({
        "type": "notification",
        "notification": {
            "id": n.id,
            "kind": n.kind,
            "title": n.title,
            "body": n.body,
            "data": n.data,
            "read": n.read,
            "created_at": humantime::format_rfc3339_millis(created_at).to_string(),
        },
    });
    bytes::Bytes::from(frame.to_string())
}

/// Sends `n` to the user's sockets. Core NATS: a user with no socket simply misses the frame and
/// finds the notification in the list.
pub async fn to_user(client: &async_nats::Client, user_id: &str, n: &Notification) {
    if let Err(e) = client.publish(streams::deliver(user_id), frame(n)).await {
        tracing::warn!(%user_id, "live notification not sent: {e}");
    }
}

/// Sends an alert to every socket, in its own task: a slow connection never holds up the
/// request that stored it.
pub fn broadcast(client: &async_nats::Client, n: &Notification) {
    let client = client.clone();
    let frame = frame(n);
    tokio::spawn(async move {
        if let Err(e) = client.publish(streams::BROADCAST, frame).await {
            tracing::warn!("alert broadcast not sent: {e}");
        }
    });
}
