//! Events the chat worker consumes.

use soulchat_runtime::WriteTx;
use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::user::{self, messages::UserEvent};

use crate::Chat;

/// `user.deleted`: the account leaves every conversation (see `members::remove_everywhere`).
/// The events it records wake the relay when the consumer's transaction commits.
impl EventHandler<user::Deleted> for Chat {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<()> {
        Ok(crate::members::remove_everywhere(&self.store, tx, &event.user_id).await?)
    }
}
