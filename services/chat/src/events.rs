//! Events the chat worker consumes.

use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::user::{self, messages::UserEvent};
use sqlx::AnyConnection;

use crate::Chat;

/// `user.deleted`: the account leaves every conversation (see `members::remove_everywhere`).
impl EventHandler<user::Deleted> for Chat {
    type Prepared = ();
    /// Whether events were recorded, so the relay has work.
    type Effect = bool;

    async fn handle(&self, conn: &mut AnyConnection, event: UserEvent, _: ()) -> anyhow::Result<bool> {
        Ok(crate::members::remove_everywhere(conn, &event.user_id).await?)
    }

    async fn committed(&self, recorded: bool) {
        if recorded {
            self.relay.wake();
        }
    }
}
