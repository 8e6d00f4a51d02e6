//! Security events for the audit log (`soulchat_subjects::audit`), recorded in the outbox in the
//! transaction of the change they describe; a failed login, which changes nothing, gets a
//! transaction of its own.

use soulchat_runtime::{RequestContext, WriteTx};
use soulchat_subjects::Event;
use soulchat_subjects::audit::AuditEvent;

use crate::Users;

/// Who the event is about: id and username, either possibly unknown (empty).
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
}

impl Users {
    /// Records `E` about `who` in `tx`, with where the request came from.
    pub(crate) async fn audit<E: Event<Payload = AuditEvent>>(
        &self,
        tx: &mut WriteTx<'_>,
        ctx: &RequestContext,
        who: Subject<'_>,
        detail: &str,
    ) -> sqlx::Result<()> {
        self.outbox.record::<E>(tx, &AuditEvent::new(&ctx.call, who.user_id, who.username, detail)).await
    }
}

impl crate::store::UserRow {
    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject { user_id: &self.id, username: &self.username }
    }
}
