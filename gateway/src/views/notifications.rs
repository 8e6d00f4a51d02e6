//! The JSON shapes of notifications, preferences and push subscriptions. A notification reads
//! the same in the REST list and in a live `notification` frame.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use soulchat_subjects::notification::messages::{Notification, Preferences};
use soulchat_subjects::time::rfc3339_ms;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: HashMap<String, String>,
    pub read: bool,
    #[schema(format = DateTime)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    pub unread_count: i64,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationEnvelope {
    pub notification: NotificationView,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MarkReadBody {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

/// Per-channel opt-in and muted conversations, both ways.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreferencesView {
    pub in_app: bool,
    pub push: bool,
    pub email: bool,
    pub sms: bool,
    /// Always in an answer; may be left out of a request (none muted).
    #[schema(required = true)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreferencesEnvelope {
    pub preferences: PreferencesView,
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushSubscriptionBody {
    #[schema(required = true)]
    #[serde(default)]
    pub endpoint: String,
    #[schema(required = true)]
    #[serde(default)]
    pub keys: PushKeys,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PushKeys {
    #[schema(required = true)]
    #[serde(default)]
    pub p256dh: String,
    #[schema(required = true)]
    #[serde(default)]
    pub auth: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointBody {
    #[schema(required = true)]
    #[serde(default)]
    pub endpoint: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AlertBody {
    #[schema(required = true)]
    #[serde(default)]
    pub title: String,
    #[schema(required = true)]
    #[serde(default)]
    pub body: String,
}

/// A stored Web Push subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionEnvelope {
    pub subscription: SubscriptionView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
}

/// The server's VAPID public key (base64url, uncompressed P-256 point): the
/// `applicationServerKey` a browser subscribes with.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushKeyView {
    pub public_key: String,
}
