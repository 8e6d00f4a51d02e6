//! Turning "this user should hear about X" into effects, inside the transaction of the event
//! that caused it: the user's preferences and mutes decide; the in-app notification is stored;
//! one delivery job per external channel (and per push subscription) goes into the outbox, so
//! the jobs leave exactly when the notification commits (the commit wakes the relay). After the
//! commit the caller publishes the live notifications ([`Notifications::published`]).

use std::collections::HashMap;

use soulchat_runtime::WriteTx;
use soulchat_subjects::notification::messages::{Delivery, Notification};
use soulchat_subjects::notification::{EmailJob, PushJob, SmsJob};
use soulchat_subjects::time::now_ms;

use crate::channels::Channel;
use crate::{Notifications, live, store};

/// A notification for one user, before preferences are applied.
pub struct Draft {
    pub user_id: String,
    pub kind: &'static str,
    /// Unique per user: a second draft with the same key changes nothing.
    pub dedup_key: String,
    pub title: String,
    pub body: String,
    pub data: HashMap<String, String>,
    /// Set for chat notifications: a muted conversation notifies nobody...
    pub conversation_id: Option<String>,
    /// ...except someone it mentions.
    pub even_muted: bool,
}

/// A stored notification to publish live once its transaction committed.
pub type Stored = (String, Notification);

impl Notifications {
    /// Applies the user's preferences to `draft` in the caller's transaction.
    pub async fn notify(&self, tx: &mut WriteTx<'_>, draft: Draft) -> anyhow::Result<Option<Stored>> {
        let prefs = store::preferences(tx, &draft.user_id).await?;
        if !draft.even_muted && draft.conversation_id.as_ref().is_some_and(|c| prefs.muted_conversations.contains(c)) {
            return Ok(None);
        }
        if store::exists(tx, &draft.user_id, &draft.dedup_key).await? {
            return Ok(None);
        }
        let notification = Notification {
            id: uuid::Uuid::now_v7().to_string(),
            kind: draft.kind.to_owned(),
            title: draft.title,
            body: draft.body,
            data: draft.data,
            read: false,
            created_at_ms: now_ms(),
        };
        let user = draft.user_id;
        if prefs.push && self.wants(Channel::Push) {
            let payload = serde_json::json!({
                "id": notification.id,
                "kind": notification.kind,
                "title": notification.title,
                "body": notification.body,
                "data": notification.data,
            })
            .to_string();
            for (_, endpoint, p256dh, auth) in store::subscriptions(tx, &user).await? {
                let job = self.job(Channel::Push, &user, &notification, endpoint, payload.clone());
                self.outbox.record::<PushJob>(tx, &Delivery { p256dh, auth, ..job }).await?;
            }
        }
        let (email, phone) = store::contacts(tx, &user).await?;
        if let Some(address) = email.filter(|_| prefs.email && self.wants(Channel::Email)) {
            let job = self.job(Channel::Email, &user, &notification, address, self.email_text(&notification));
            let html = self.email_html(&notification);
            self.outbox.record::<EmailJob>(tx, &Delivery { subject: notification.title.clone(), html, ..job }).await?;
        }
        if let Some(number) = phone.filter(|_| prefs.sms && self.wants(Channel::Sms)) {
            let text = format!("{}: {}", notification.title, notification.body);
            let job = self.job(Channel::Sms, &user, &notification, number, text);
            self.outbox.record::<SmsJob>(tx, &job).await?;
        }
        if !prefs.in_app {
            return Ok(None);
        }
        store::insert(tx, &user, &draft.dedup_key, &notification).await?;
        Ok(Some((user, notification)))
    }

    /// After the commit: the live notifications go out (the commit already woke the relay).
    pub async fn published(&self, stored: Vec<Stored>) {
        for (user, notification) in stored {
            live::to_user(&self.client, &user, &notification).await;
            self.stats.live_frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether a channel can deliver; counts the skip when the user wanted one that cannot.
    fn wants(&self, channel: Channel) -> bool {
        let configured = self.channels.configured(channel);
        if !configured {
            self.stats.channel(channel).skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        configured
    }

    fn job(&self, channel: Channel, user: &str, n: &Notification, to: String, text: String) -> Delivery {
        Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            channel: channel.name().to_owned(),
            user_id: user.to_owned(),
            to,
            text,
            notification_id: n.id.clone(),
            ..Default::default()
        }
    }

    fn email_text(&self, n: &Notification) -> String {
        match &self.public_url {
            Some(url) => format!("{}\n\nOpen SoulChat: {url}\n", n.body),
            None => format!("{}\n", n.body),
        }
    }

    fn email_html(&self, n: &Notification) -> String {
        let link = self
            .public_url
            .as_deref()
            .map(|url| format!("<p><a href=\"{0}\">Open SoulChat</a></p>", escape(url)))
            .unwrap_or_default();
        format!("<h1>{}</h1><p>{}</p>{link}", escape(&n.title), escape(&n.body))
    }
}

/// HTML-escapes text written into an email body.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
