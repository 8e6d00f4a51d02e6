//! Security events for the audit log (`soulchat_subjects::audit`), recorded in the outbox in the
//! transaction of the change they describe; a failed login, which changes nothing, gets a
//! transaction of its own.

use soulchat_runtime::{RequestContext, WriteTx};
use soulchat_subjects::Event;
use soulchat_subjects::audit::AuditEvent;
use soulchat_subjects::time::now_ms;

use crate::Users;

/// The longest `detail` kept (an email address at most).
const MAX_DETAIL: usize = 254;

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
        let call = &ctx.call;
        let event = AuditEvent {
            at_ms: now_ms(),
            user_id: who.user_id.to_owned(),
            username: who.username.to_owned(),
            client_address: call.client_address.clone().unwrap_or_default(),
            user_agent: call.user_agent.clone().unwrap_or_default(),
            request_id: call.request_id.clone(),
            detail: detail.chars().take(MAX_DETAIL).collect(),
        };
        self.outbox.record::<E>(tx, &event).await
    }
}

impl crate::store::UserRow {
    pub(crate) fn subject(&self) -> Subject<'_> {
        Subject { user_id: &self.id, username: &self.username }
    }
}
