//! The live frames that reach users through core NATS rather than the chat stream: read
//! receipts, typing, presence and notifications on `soulchat.deliver.<user_id>` (one
//! subscription per user held here, from the user's first socket to its last), and frames for
//! everyone (system alerts) on `soulchat.deliver.broadcast`. None has an order to keep; any
//! gateway ([`crate::live`]) or worker may publish them.
//!
//! A message is normally a ready JSON frame and passes on verbatim. A notification arrives as
//! the contract's protobuf `Notification` (`Content-Type: application/protobuf`) and is rendered
//! here, once per message, into the frame every socket it is for shares.

use std::sync::Arc;

use futures::StreamExt;
use soulchat_subjects::notification::messages::Notification;
use soulchat_subjects::{headers, streams, wire};
use tokio_util::sync::CancellationToken;

use crate::views::frames;
use crate::ws::registry::{Outbound, Registry};

/// Follows `user_id`'s deliveries until `released` is cancelled. Subscribed (and the server
/// told) before the user's first socket is served, so that nothing published for the user after
/// this point is missed.
pub async fn follow_user(client: &async_nats::Client, registry: &Registry, user_id: &str, released: CancellationToken) {
    match client.subscribe(streams::deliver(user_id)).await {
        Ok(subscription) => {
            let _ = client.flush().await;
            tokio::spawn(forward(registry.clone(), user_id.to_owned(), subscription, released));
        }
        Err(e) => tracing::warn!(user = %user_id, "subscribing to deliveries: {e}"),
    }
}

async fn forward(
    registry: Registry,
    user_id: String,
    mut subscription: async_nats::Subscriber,
    released: CancellationToken,
) {
    loop {
        tokio::select! {
            message = subscription.next() => match message {
                Some(message) => {
                    if let Some(outbound) = outbound(message) {
                        registry.dispatch(&user_id, &outbound);
                    }
                }
                None => return,
            },
            _ = released.cancelled() => return,
        }
    }
}

/// Frames for everyone (system alerts), to every socket held here, until `shutdown`.
pub async fn forward_broadcasts(client: async_nats::Client, registry: Registry, shutdown: CancellationToken) {
    let mut subscription = match client.subscribe(streams::BROADCAST).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("subscribing to broadcasts: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            message = subscription.next() => match message {
                Some(message) => {
                    if let Some(outbound) = outbound(message) {
                        registry.dispatch_all(&outbound);
                    }
                }
                None => return,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The frame a delivery stands for: its payload as it is, or the rendered notification.
fn outbound(message: async_nats::Message) -> Option<Outbound> {
    let protobuf = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::CONTENT_TYPE))
        .is_some_and(|v| v.as_str().trim().starts_with(wire::PROTOBUF));
    if !protobuf {
        return Some(Outbound::Frame(Arc::new(message.payload)));
    }
    match <Notification as prost::Message>::decode(message.payload) {
        Ok(notification) => Some(Outbound::Frame(Arc::new(frames::notification(notification)))),
        Err(e) => {
            tracing::error!(subject = %message.subject, "undecodable notification skipped: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn message(payload: Bytes, content_type: Option<&str>) -> async_nats::Message {
        let headers = content_type.map(|v| {
            let mut h = async_nats::HeaderMap::new();
            h.insert(headers::CONTENT_TYPE, v);
            h
        });
        async_nats::Message {
            subject: streams::deliver("u1").into(),
            reply: None,
            length: payload.len(),
            payload,
            headers,
            status: None,
            description: None,
        }
    }

    fn frame(outbound: Option<Outbound>) -> Option<Bytes> {
        match outbound {
            Some(Outbound::Frame(frame)) => Some(Bytes::clone(&frame)),
            _ => None,
        }
    }

    #[test]
    fn ready_frames_pass_verbatim_and_notifications_are_rendered() {
        let ready = Bytes::from_static(br#"{"type":"typing","conversation_id":"c1","user":"ann"}"#);
        assert_eq!(frame(outbound(message(ready.clone(), None))), Some(ready));
        let n = Notification { id: "n1".to_owned(), kind: "alert".to_owned(), ..Default::default() };
        let encoded = Bytes::from(prost::Message::encode_to_vec(&n));
        assert_eq!(frame(outbound(message(encoded, Some(wire::PROTOBUF)))), Some(frames::notification(n)));
        assert!(outbound(message(Bytes::from_static(b"\xff\xff"), Some(wire::PROTOBUF))).is_none());
    }
}
