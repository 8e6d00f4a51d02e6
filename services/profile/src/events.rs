//! Events the profile worker consumes.

use soulchat_runtime::WriteTx;
use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::user::{self, messages::UserEvent};

use crate::Profiles;
use crate::store::{self, ProfileRow};

/// `user.deleted`: the profile and every follow edge go; the counts of those it touched follow.
impl EventHandler<user::Deleted> for Profiles {
    type Prepared = ();
    type Effect = Option<(ProfileRow, Vec<String>)>;

    async fn handle(&self, tx: &mut WriteTx<'_>, event: UserEvent, _: ()) -> anyhow::Result<Self::Effect> {
        Ok(store::remove(tx, &event.user_id).await?)
    }

    async fn committed(&self, removed: Self::Effect) {
        if let Some((row, touched)) = removed {
            crate::handlers::after_removal(self, &row, &touched).await;
        }
    }
}
