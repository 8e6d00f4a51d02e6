//! The JSON shapes of reports and suspensions.

use serde::{Deserialize, Serialize};
use soulchat_subjects::chat::messages::Report;
use soulchat_subjects::time::rfc3339_ms;
use soulchat_subjects::user::messages::SuspendReply;
use utoipa::ToSchema;

use crate::people::Names;
use crate::views::chat::MessageView;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportBody {
    /// Why: 1-1,000 characters.
    #[schema(required = true)]
    #[serde(default)]
    pub reason: String,
}

/// `delete` deletes the message, `dismiss` leaves it, `suspend` suspends its author until
/// `until` (RFC 3339, UTC) for `reason`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveBody {
    #[schema(required = true, pattern = "^(delete|dismiss|suspend)$")]
    #[serde(default)]
    pub action: String,
    #[schema(format = DateTime)]
    pub until: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SuspendBody {
    /// Until when, RFC 3339 in UTC (`…Z`), in the future.
    #[schema(required = true, format = DateTime)]
    #[serde(default)]
    pub until: String,
    /// Why: 1-1,000 characters.
    #[schema(required = true)]
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub id: String,
    pub conversation_id: String,
    /// The reported message's seq.
    pub message_seq: i64,
    /// Who reported it; `null` once the account is gone.
    #[schema(required = true)]
    pub reporter: Option<String>,
    /// Who wrote it; `null` once the account is gone.
    #[schema(required = true)]
    pub author: Option<String>,
    pub reason: String,
    /// `open`, or how it was resolved: `deleted`, `dismissed`, `suspended`.
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub resolved_at: Option<String>,
    /// The message as it is now.
    #[schema(required = true)]
    pub message: Option<MessageView>,
}

impl ReportView {
    pub fn new(r: Report, names: &Names) -> Self {
        ReportView {
            reporter: names.get(&r.reporter_id),
            author: names.get(&r.author_id),
            id: r.id,
            conversation_id: r.conversation_id,
            message_seq: r.seq,
            reason: r.reason,
            status: r.status,
            created_at: rfc3339_ms(r.created_at_ms),
            resolved_at: r.resolved_at_ms.map(rfc3339_ms),
            message: r.message.map(|m| MessageView::new(m, names)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportEnvelope {
    pub report: ReportView,
}

/// A page of open reports, oldest first; `next_cursor` is `null` on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub reports: Vec<ReportView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionView {
    pub username: String,
    #[schema(format = DateTime)]
    pub until: String,
    pub reason: String,
}

impl From<SuspendReply> for SuspensionView {
    fn from(s: SuspendReply) -> Self {
        SuspensionView { username: s.username, until: rfc3339_ms(s.until_ms), reason: s.reason }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionEnvelope {
    pub suspension: SuspensionView,
}
