//! Domain events the notification worker consumes from `SOULCHAT_EVENTS` (through the
//! runtime's durable consumer, exactly-once in effect): the account's email as a contact
//! point, the account's removal, and new followers.

use std::collections::HashMap;

use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::profile::{self, messages::FollowEvent};
use soulchat_subjects::user::{self, messages::UserEvent};
use sqlx::AnyConnection;

use crate::Notifications;
use crate::compose::{Draft, Stored};
use crate::store::Store;

/// `user.created`: where the user may be reached (nowhere outside the app until verified).
impl EventHandler<user::Created> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, conn: &mut AnyConnection, event: UserEvent, _: ()) -> anyhow::Result<()> {
        record_contacts(conn, &event).await
    }
}

/// `user.updated`: a changed email is unverified again; a verified one or a phone arrives here.
impl EventHandler<user::Updated> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, conn: &mut AnyConnection, event: UserEvent, _: ()) -> anyhow::Result<()> {
        record_contacts(conn, &event).await
    }
}

/// Contact points are used only once verified.
async fn record_contacts(conn: &mut AnyConnection, event: &UserEvent) -> anyhow::Result<()> {
    let email = Some(event.email.as_str()).filter(|e| event.email_verified && !e.is_empty());
    Store::set_contacts(conn, &event.user_id, email, event.phone.as_deref()).await?;
    Ok(())
}

/// `user.deleted`: everything kept about the user goes with the account.
impl EventHandler<user::Deleted> for Notifications {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, conn: &mut AnyConnection, event: UserEvent, _: ()) -> anyhow::Result<()> {
        Store::delete_for_user(conn, &event.user_id).await?;
        Ok(())
    }
}

/// `profile.followed`: the followee hears about the new follower.
impl EventHandler<profile::Followed> for Notifications {
    type Prepared = ();
    type Effect = Option<Stored>;

    async fn handle(&self, conn: &mut AnyConnection, event: FollowEvent, _: ()) -> anyhow::Result<Self::Effect> {
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
        };
        self.notify(conn, draft).await
    }

    async fn committed(&self, stored: Self::Effect) {
        self.published(stored.into_iter().collect()).await;
    }
}
