//! Events the chat worker consumes.

use soulchat_runtime::WriteTx;
use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::profile::{self, messages::BlockEvent};
use soulchat_subjects::user::{self, messages::UserEvent};

use crate::Chat;
use crate::store::Store;

/// `user.deleted`: the account leaves every conversation (see `members::remove_everywhere`).
/// The events it records wake the relay when the consumer's transaction commits.
impl EventHandler<user::Deleted> for Chat {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<()> {
        Ok(crate::members::remove_everywhere(&self.store, tx, &event.user_id).await?)
    }
}

/// `profile.block_changed`: the copy of blocks that open_direct, send and contacts check.
impl EventHandler<profile::BlockChanged> for Chat {
    type Prepared = ();
    type Effect = ();

    async fn handle(&self, tx: &mut WriteTx<'_>, event: BlockEvent, _: ()) -> anyhow::Result<()> {
        Ok(Store::set_block(tx, &event.blocker_id, &event.blocked_id, event.blocked).await?)
    }
}
