//! Conversations and the list of a user's conversations.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::chat::messages::Conversation;
use soulchat_subjects::time::now_ms;
use sqlx::FromRow;

use super::{MemberRow, Store, sql};

#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub last_seq: i64,
    pub member_count: i64,
    pub created_at_ms: i64,
    pub last_activity_ms: i64,
}

impl ConversationRow {
    pub fn is_group(&self) -> bool {
        self.kind == "group"
    }

    /// The conversation as `viewer` sees it, without members, read state or last message.
    pub fn to_proto(&self) -> Conversation {
        Conversation {
            id: self.id.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at_ms: self.created_at_ms,
            last_activity_ms: self.last_activity_ms,
            last_seq: self.last_seq,
            member_count: self.member_count as u32,
            ..Default::default()
        }
    }
}

const CONVERSATION: &str =
    "SELECT id, kind, name, description, last_seq, member_count, created_at_ms, last_activity_ms FROM conversations";

impl Store {
    pub async fn conversation(r: &mut impl Reads, id: &str) -> sqlx::Result<Option<ConversationRow>> {
        r.fetch_optional(sqlx::query_as(sql(&[CONVERSATION, " WHERE id = ? AND deleted = 0"])).bind(id)).await
    }

    pub async fn direct(r: &mut impl Reads, key: &str) -> sqlx::Result<Option<ConversationRow>> {
        r.fetch_optional(sqlx::query_as(sql(&[CONVERSATION, " WHERE direct_key = ?"])).bind(key)).await
    }

    /// A new conversation at seq 0; its creation event takes seq 1.
    pub async fn insert_conversation(
        tx: &mut WriteTx<'_>,
        id: &str,
        kind: &str,
        name: &str,
        description: &str,
        direct_key: Option<&str>,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO conversations (id, kind, name, description, direct_key, last_seq, member_count, deleted, \
             created_at_ms, last_activity_ms) VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, ?)",
        )
        .bind(id)
        .bind(kind)
        .bind(name)
        .bind(description)
        .bind(direct_key)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn update_conversation(
        tx: &mut WriteTx<'_>,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE conversations SET name = COALESCE(?, name), description = COALESCE(?, description) WHERE id = ?",
        )
        .bind(name)
        .bind(description)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Marks the conversation deleted and drops its members, messages, reactions, pins and every
    /// event but the last (the deletion itself, still to be published).
    pub async fn delete_conversation(tx: &mut WriteTx<'_>, id: &str, last_seq: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET deleted = 1, member_count = 0 WHERE id = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM members WHERE conversation_id = ?").bind(id).execute(&mut **tx).await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = ?").bind(id).execute(&mut **tx).await?;
        sqlx::query("DELETE FROM reactions WHERE conversation_id = ?").bind(id).execute(&mut **tx).await?;
        sqlx::query("DELETE FROM pins WHERE conversation_id = ?").bind(id).execute(&mut **tx).await?;
        sqlx::query("DELETE FROM events WHERE conversation_id = ? AND seq < ?")
            .bind(id)
            .bind(last_seq)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A page of `user_id`'s conversations, newest activity first, strictly after `after`
    /// (`(last_activity_ms, id)` of the previous page's last row).
    pub async fn conversations_of(
        r: &mut impl Reads,
        user_id: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> sqlx::Result<Vec<(ConversationRow, MemberRow)>> {
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        let query = sqlx::query_as(
            "SELECT c.id, c.kind, c.name, c.description, c.last_seq, c.member_count, c.created_at_ms, \
             c.last_activity_ms, m.user_id, m.role, m.joined_seq, m.joined_at_ms, m.read_seq \
             FROM members m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.user_id = ? AND (c.last_activity_ms < ? OR (c.last_activity_ms = ? AND c.id < ?)) \
             ORDER BY c.last_activity_ms DESC, c.id DESC LIMIT ?",
        )
        .bind(user_id)
        .bind(at)
        .bind(at)
        .bind(id)
        .bind(limit);
        let rows: Vec<ListRow> = r.fetch_all(query).await?;
        Ok(rows.into_iter().map(ListRow::split).collect())
    }

    /// Every conversation `user_id` belongs to, with the membership.
    /// Each of the user's conversations with the seq they joined at and its last seq.
    pub async fn resume_points(r: &mut impl Reads, user_id: &str) -> sqlx::Result<Vec<(String, i64, i64)>> {
        let query = sqlx::query_as(
            "SELECT m.conversation_id, m.joined_seq, c.last_seq FROM members m \
             JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = ?",
        )
        .bind(user_id);
        r.fetch_all(query).await
    }

    pub async fn memberships(r: &mut impl Reads, user_id: &str) -> sqlx::Result<Vec<(String, MemberRow)>> {
        let query = sqlx::query_as(
            "SELECT conversation_id, user_id, role, joined_seq, joined_at_ms, read_seq FROM members WHERE user_id = ?",
        )
        .bind(user_id);
        let rows: Vec<(String, String, String, i64, i64, i64)> = r.fetch_all(query).await?;
        Ok(rows
            .into_iter()
            .map(|(c, user_id, role, joined_seq, joined_at_ms, read_seq)| {
                (c, MemberRow { user_id, role, joined_seq, joined_at_ms, read_seq })
            })
            .collect())
    }
}

#[derive(FromRow)]
struct ListRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    #[sqlx(flatten)]
    member: MemberRow,
}

impl ListRow {
    fn split(self) -> (ConversationRow, MemberRow) {
        (self.conversation, self.member)
    }
}
