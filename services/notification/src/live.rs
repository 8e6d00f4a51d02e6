//! Live in-app delivery: a stored notification leaves as the protobuf `Notification` on core
//! NATS, to `soulchat.deliver.<user_id>` (the gateways holding the user's sockets) or, for a
//! system alert, to the broadcast subject every gateway forwards to every socket. The gateway
//! owns every JSON shape: it renders the message into the socket's `notification` frame.

use async_nats::HeaderMap;
use soulchat_subjects::notification::messages::Notification;
use soulchat_subjects::{Format, headers, streams, wire};

fn protobuf() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::CONTENT_TYPE, wire::PROTOBUF);
    h
}

/// Sends `n` to the user's sockets. Core NATS: a user with no socket simply misses it and finds
/// the notification in the list.
pub async fn to_user(client: &async_nats::Client, user_id: &str, n: &Notification) {
    if let Err(e) = client.publish_with_headers(streams::deliver(user_id), protobuf(), Format::Protobuf.encode(n)).await
    {
        tracing::warn!(%user_id, "live notification not sent: {e}");
    }
}

/// Sends an alert to every socket, in its own task: a slow connection never holds up the
/// request that stored it.
pub fn broadcast(client: &async_nats::Client, n: &Notification) {
    let client = client.clone();
    let payload = Format::Protobuf.encode(n);
    tokio::spawn(async move {
        if let Err(e) = client.publish_with_headers(streams::BROADCAST, protobuf(), payload).await {
            tracing::warn!("alert broadcast not sent: {e}");
        }
    });
}
