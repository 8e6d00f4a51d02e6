//! The JSON shapes of notifications, preferences and push subscriptions. A notification reads
//! the same in the REST list and in a live `notification` frame.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use soulchat_subjects::notification::messages::{Notification, Preferences};
use soulchat_subjects::time::rfc3339_ms;

#[derive(Debug, Serialize)]
pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: HashMap<String, String>,
    pub read: bool,
    pub created_at: String,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind,
            title: n.title,
            body: n.body,
            data: n.data,
            read: n.read,
            created_at: rfc3339_ms(n.created_at_ms),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    pub unread_count: i64,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NotificationEnvelope {
    pub notification: NotificationView,
}

#[derive(Debug, Deserialize)]
pub struct MarkReadBody {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

/// Per-channel opt-in and muted conversations, both ways.
#[derive(Debug, Serialize, Deserialize)]
pub struct PreferencesView {
    pub in_app: bool,
    pub push: bool,
    pub email: bool,
    pub sms: bool,
    #[serde(default)]
    pub muted_conversations: Vec<String>,
}

impl From<Preferences> for PreferencesView {
    fn from(p: Preferences) -> Self {
        PreferencesView {
            in_app: p.in_app,
            push: p.push,
            email: p.email,
            sms: p.sms,
            muted_conversations: p.muted_conversations,
        }
    }
}

impl From<PreferencesView> for Preferences {
    fn from(p: PreferencesView) -> Self {
        Preferences {
            in_app: p.in_app,
            push: p.push,
            email: p.email,
            sms: p.sms,
            muted_conversations: p.muted_conversations,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PreferencesEnvelope {
    pub preferences: PreferencesView,
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
pub struct PushSubscriptionBody {
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub keys: PushKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct PushKeys {
    #[serde(default)]
    pub p256dh: String,
    #[serde(default)]
    pub auth: String,
}

#[derive(Debug, Deserialize)]
pub struct EndpointBody {
    #[serde(default)]
    pub endpoint: String,
}

#[derive(Debug, Deserialize)]
pub struct AlertBody {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}
