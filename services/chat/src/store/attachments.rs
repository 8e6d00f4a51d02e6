//! Which messages carry an attachment: who may read it, and whether it is still used.

use soulchat_runtime::Reads;

use super::Store;

/// Messages that show an attachment: not deleted, in a conversation that is not.
const LIVE: &str = "SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation_id \
     WHERE m.attachment_id = ? AND m.deleted = 0 AND c.deleted = 0";

/// How an attachment is used by messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentUse {
    /// A message shows it.
    Shown,
    /// It was sent, and every message that carried it is gone.
    Released,
    /// No message ever carried it.
    Unsent,
}

impl Store {
    /// Whether a message showing the attachment is in one of `user_id`'s conversations.
    pub async fn attachment_readable(r: &mut impl Reads, attachment_id: &str, user_id: &str) -> sqlx::Result<bool> {
        let query = sqlx::query_as::<_, (i64,)>(super::sql(&[
            LIVE,
            " AND EXISTS (SELECT 1 FROM members mb WHERE mb.conversation_id = m.conversation_id AND mb.user_id = ?) LIMIT 1",
        ]))
        .bind(attachment_id)
        .bind(user_id);
        Ok(r.fetch_optional(query).await?.is_some())
    }

    pub async fn attachment_use(r: &mut impl Reads, attachment_id: &str) -> sqlx::Result<AttachmentUse> {
        let shown = sqlx::query_as::<_, (i64,)>(super::sql(&[LIVE, " LIMIT 1"])).bind(attachment_id);
        if r.fetch_optional(shown).await?.is_some() {
            return Ok(AttachmentUse::Shown);
        }
        let sent =
            sqlx::query_as::<_, (i64,)>("SELECT seq FROM messages WHERE attachment_id = ? LIMIT 1").bind(attachment_id);
        Ok(if r.fetch_optional(sent).await?.is_some() { AttachmentUse::Released } else { AttachmentUse::Unsent })
    }
}
