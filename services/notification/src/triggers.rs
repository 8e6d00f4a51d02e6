//! Domain events the notification worker consumes from `SOULCHAT_EVENTS` (through the
//! runtime's durable consumer, exactly-once in effect): the account's email as a contact
//! point, the account's removal, and new followers.

use std::collections::HashMap;

use soulchat_runtime::WriteTx;
use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::profile::{self, messages::FollowEvent};
use soulchat_subjects::user::{self, messages::UserEvent};

use crate::compose::{Draft, Stored};
use crate::{Notifications, store};

/// `user.created`: where the user may be reached (nowhere outside the app until verified).
impl EventHandler<user::Created> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<()> {
        record_contacts(tx, &event).await
    }
}

/// `user.updated`: a changed email is unverified again; a verified one or a phone arrives here.
impl EventHandler<user::Updated> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<()> {
        record_contacts(tx, &event).await
    }
}

/// Contact points are used only once verified.
async fn record_contacts(tx: &mut WriteTx<'_>, event: &UserEvent) -> anyhow::Result<()> {
    let email = Some(event.email.as_str()).filter(|e| event.email_verified && !e.is_empty());
    store::set_contacts(tx, &event.user_id, email, event.phone.as_deref()).await?;
    Ok(())
}

/// `user.deleted`: everything kept about the user goes with the account.
impl EventHandler<user::Deleted> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<()> {
        store::delete_for_user(tx, &event.user_id).await?;
        Ok(())
    }
}

/// `profile.followed`: the followee hears about the new follower.
impl EventHandler<profile::Followed> for Notifications {
    type Prepared = ();
    type Effect = Option<Stored>;

    async fn handle(&self, tx: &mut WriteTx<'_>, event: FollowEvent, _: ()) -> anyhow::Result<Self::Effect> {
        let draft = Draft {
            user_id: event.followee_id.clone(),
            kind: "follower",
            dedup_key: format!("follow:{}:{}", event.follower_id, event.at_ms),
            title: "New follower".to_owned(),
            body: format!("{} started following you", event.follower_username),
            data: HashMap::from([
                ("username".to_owned(), event.follower_username),
                ("user_id".to_owned(), event.follower_id),
            ]),
            conversation_id: None,
            even_muted: false,
        };
        self.notify(tx, draft).await
    }

    async fn committed(&self, stored: Self::Effect) {
        self.published(stored.into_iter().collect()).await;
    }
}
