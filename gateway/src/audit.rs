//! The security events the gateway records itself (`soulchat_subjects::audit`): every request
//! refused with 403, whoever refused it (the edge's layer `routes::edge::audit_refusals`). The
//! gateway has no outbox, so it
//! publishes them straight to the audit stream's subject; losing one to a broken connection
//! loses a record of a refusal, never the refusal.

use soulchat_subjects::audit::{self, AuditEvent};
use soulchat_subjects::{CallContext, Event};

use crate::state::AppState;

/// Records that `user_id` was refused `action` (a route, e.g. `POST /api/admin/alerts`).
pub async fn refused(state: &AppState, ctx: &CallContext, user_id: &str, action: &str) {
    let event = AuditEvent::new(ctx, user_id, "", action);
    let subject = <audit::PermissionRefused as Event>::SUBJECT;
    if let Err(e) = state.caller.client().publish(subject, prost::Message::encode_to_vec(&event).into()).await {
        tracing::warn!("recording a refusal in the audit log: {e}");
    }
}
