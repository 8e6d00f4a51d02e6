//! WebSocket frames: JSON text, each `{"type": …}`. Client frames are parsed here; server
//! frames are rendered here once per event and shared by every socket that receives them.
//! They live with the other views because not only sessions render them: the chat calls and
//! presence publish ready frames for other gateways' sockets ([`crate::live`]).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::{ChatEvent, chat_event::Event};
use soulchat_subjects::notification::messages::Notification;
use soulchat_subjects::time::rfc3339_ms;

use crate::people::Names;
use crate::views::chat::{ConversationView, MemberView, MessageView, SendBody};
use crate::views::notifications::NotificationView;

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        #[serde(default)]
        conversation_id: String,
        #[serde(flatten)]
        body: SendBody,
    },
    Typing {
        #[serde(default)]
        conversation_id: String,
    },
    Read {
        #[serde(default)]
        conversation_id: String,
        seq: i64,
    },
    Resume {
        #[serde(default)]
        conversations: std::collections::HashMap<String, i64>,
    },
    Ping,
}

pub fn text(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

pub fn pong() -> Bytes {
    text(&json!({"type": "pong"}))
}

pub fn resumed() -> Bytes {
    text(&json!({"type": "resumed"}))
}

pub fn resume_truncated(conversation_id: &str, from_seq: i64) -> Bytes {
    text(&json!({"type": "resume_truncated", "conversation_id": conversation_id, "from_seq": from_seq}))
}

pub fn ack(client_id: &str, message: MessageView) -> Bytes {
    text(&json!({"type": "ack", "client_id": client_id, "message": message}))
}

/// An `error` frame: the HTTP-like code, a message, the frame's `client_id` when it had one,
/// and the field problems, as in the REST error body.
pub fn error(e: &ServiceError, client_id: Option<&str>) -> Bytes {
    text(
        &json!({"type": "error", "code": e.code.as_u16(), "message": e.message, "client_id": client_id, "errors": e.fields}),
    )
}

pub fn typing(conversation_id: &str, user: &str) -> Bytes {
    text(&json!({"type": "typing", "conversation_id": conversation_id, "user": user}))
}

pub fn read(conversation_id: &str, user: Option<String>, seq: i64) -> Bytes {
    text(&json!({"type": "read", "conversation_id": conversation_id, "user": user, "seq": seq}))
}

/// `presence`: `last_seen` is when the status was last confirmed.
pub fn presence(user: &str, status: &str, last_seen_ms: Option<i64>) -> Bytes {
    text(&json!({"type": "presence", "user": user, "status": status, "last_seen": last_seen_ms.map(rfc3339_ms)}))
}

/// A live notification, in the same view as the REST list. Rendered through a JSON value like
/// every frame here, exactly as the notification worker used to render it itself, so the bytes
/// a client gets are the same (a `serde_json` map orders its keys).
pub fn notification(n: Notification) -> Bytes {
    text(&json!({"type": "notification", "notification": NotificationView::from(n)}))
}

/// The user ids an event's frame names, for [`Names::of_ids`].
pub fn user_ids(event: &ChatEvent) -> Vec<String> {
    let mut ids = vec![event.actor_id.as_str()];
    match &event.event {
        Some(Event::MessageCreated(m) | Event::MessageEdited(m)) => ids.extend(MessageView::user_ids(m)),
        Some(Event::MemberAdded(m) | Event::RoleChanged(m)) => ids.push(&m.user_id),
        Some(Event::MemberRemoved(m)) => ids.push(&m.user_id),
        Some(Event::ConversationCreated(c) | Event::ConversationUpdated(c)) => {
            ids.extend(ConversationView::user_ids(c))
        }
        _ => {}
    }
    ids.into_iter().map(str::to_owned).collect()
}

/// The frame of a committed conversation event. Every one carries `conversation_id` and `seq`,
/// the client's resume cursor.
pub fn chat_event(event: ChatEvent, names: &Names) -> Bytes {
    let (kind, body) = match event.event {
        Some(Event::MessageCreated(m)) => ("message", json!({"message": MessageView::new(m, names)})),
        Some(Event::MessageEdited(m)) => ("message_updated", json!({"message": MessageView::new(m, names)})),
        Some(Event::MessageDeleted(d)) => ("message_deleted", json!({"message_seq": d.seq})),
        Some(Event::MemberAdded(m)) => ("member_added", json!({"member": MemberView::new(m, names)})),
        Some(Event::RoleChanged(m)) => ("member_updated", json!({"member": MemberView::new(m, names)})),
        Some(Event::MemberRemoved(m)) => ("member_removed", json!({"user": names.get(&m.user_id)})),
        Some(Event::ConversationCreated(c)) => {
            ("conversation_created", json!({"conversation": ConversationView::new(c, names)}))
        }
        Some(Event::ConversationUpdated(c)) => {
            ("conversation_updated", json!({"conversation": ConversationView::new(c, names)}))
        }
        Some(Event::ConversationDeleted(_)) => ("conversation_deleted", json!({})),
        Some(Event::ReactionChanged(r)) => {
            ("reaction", json!({"message_seq": r.message_seq, "emoji": r.emoji, "added": r.added}))
        }
        Some(Event::PinChanged(p)) => ("pin", json!({"message_seq": p.message_seq, "pinned": p.pinned})),
        None => ("unknown", json!({})),
    };
    let mut frame = body;
    frame["type"] = json!(kind);
    frame["conversation_id"] = json!(event.conversation_id);
    frame["seq"] = json!(event.seq);
    frame["at"] = json!(rfc3339_ms(event.at_ms));
    frame["by"] = json!(names.get(&event.actor_id));
    text(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_frame_is_the_one_the_worker_rendered() {
        let n = Notification {
            id: "n1".to_owned(),
            kind: "mention".to_owned(),
            title: "Title".to_owned(),
            body: "Body".to_owned(),
            data: [("seq", "7"), ("conversation_id", "c1")].map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
            read: false,
            created_at_ms: 1_700_000_000_123,
        };
        // The notification worker's own rendering, before it published the protobuf message.
        let worker = json!({
            "type": "notification",
            "notification": {
                "id": n.id,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "data": n.data,
                "read": n.read,
                "created_at": rfc3339_ms(n.created_at_ms),
            },
        });
        assert_eq!(notification(n), Bytes::from(worker.to_string()));
    }
}
