//! The chat database, behind one type so handlers never write SQL: conversations, members,
//! messages, and the per-conversation event log with its outbox.
//!
//! Every change to a conversation appends an event under the conversation's next `seq`
//! ([`Store::next_seq`], or [`Store::lock_last_seq`] for a batch, then [`Store::record`]) in the
//! transaction that makes the change, so the log, the tables and the outbox never disagree.

use std::collections::BTreeSet;

use prost::Message as _;
use soulchat_runtime::{Backend, Database, now_ms};
use soulchat_subjects::chat::messages::{ChatEvent, Conversation, Member, Message};
use sqlx::{Any, AnyConnection, FromRow, QueryBuilder, Transaction};

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

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: String,
    pub role: String,
    pub joined_seq: i64,
    pub joined_at_ms: i64,
    pub read_seq: i64,
}

impl MemberRow {
    pub fn to_proto(&self) -> Member {
        Member {
            user_id: self.user_id.clone(),
            role: self.role.clone(),
            joined_seq: self.joined_seq,
            joined_at_ms: self.joined_at_ms,
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub conversation_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub client_id: String,
    pub kind: String,
    pub content: String,
    pub url: Option<String>,
    pub reply_to: Option<i64>,
    pub created_at_ms: i64,
    pub edited_at_ms: Option<i64>,
    pub deleted: i64,
}

impl MessageRow {
    pub fn to_proto(&self) -> Message {
        let deleted = self.deleted != 0;
        Message {
            conversation_id: self.conversation_id.clone(),
            seq: self.seq,
            sender_id: self.sender_id.clone(),
            client_id: self.client_id.clone(),
            kind: self.kind.clone(),
            content: if deleted { String::new() } else { self.content.clone() },
            reply_to: self.reply_to,
            url: if deleted { None } else { self.url.clone() },
            created_at_ms: self.created_at_ms,
            edited_at_ms: self.edited_at_ms,
            deleted,
        }
    }
}

const CONVERSATION: &str =
    "SELECT id, kind, name, description, last_seq, member_count, created_at_ms, last_activity_ms FROM conversations";
const MEMBER: &str = "SELECT user_id, role, joined_seq, joined_at_ms, read_seq FROM members";
const MESSAGE: &str = "SELECT conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
     created_at_ms, edited_at_ms, deleted FROM messages";

fn sql(parts: &[&str]) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(parts.concat())
}

#[derive(Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN`: a deferred
    /// transaction that read first fails at once (SQLITE_BUSY, no waiting) when another writer
    /// committed in between.
    pub async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Any>> {
        match self.db.backend() {
            Backend::Sqlite => self.db.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::MySql => self.db.pool().begin().await,
        }
    }

    // --- conversations ---

    pub async fn conversation(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<ConversationRow>> {
        sqlx::query_as(sql(&[CONVERSATION, " WHERE id = ? AND deleted = 0"])).bind(id).fetch_optional(conn).await
    }

    pub async fn direct(conn: &mut AnyConnection, key: &str) -> sqlx::Result<Option<ConversationRow>> {
        sqlx::query_as(sql(&[CONVERSATION, " WHERE direct_key = ?"])).bind(key).fetch_optional(conn).await
    }

    /// A new conversation at seq 0; its creation event takes seq 1.
    pub async fn insert_conversation(
        conn: &mut AnyConnection,
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
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn update_conversation(
        conn: &mut AnyConnection,
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
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Marks the conversation deleted and drops its members, messages and every event but the
    /// last (the deletion itself, still to be published).
    pub async fn delete_conversation(conn: &mut AnyConnection, id: &str, last_seq: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET deleted = 1, member_count = 0 WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM members WHERE conversation_id = ?").bind(id).execute(&mut *conn).await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = ?").bind(id).execute(&mut *conn).await?;
        sqlx::query("DELETE FROM events WHERE conversation_id = ? AND seq < ?")
            .bind(id)
            .bind(last_seq)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// A page of `user_id`'s conversations, newest activity first, strictly after `after`
    /// (`(last_activity_ms, id)` of the previous page's last row).
    pub async fn conversations_of(
        conn: &mut AnyConnection,
        user_id: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> sqlx::Result<Vec<(ConversationRow, MemberRow)>> {
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        let rows: Vec<ListRow> = sqlx::query_as(
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
        .bind(limit)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(ListRow::split).collect())
    }

    /// Every conversation `user_id` belongs to, with the membership.
    pub async fn memberships(conn: &mut AnyConnection, user_id: &str) -> sqlx::Result<Vec<(String, MemberRow)>> {
        let rows: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT conversation_id, user_id, role, joined_seq, joined_at_ms, read_seq FROM members WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_all(conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(c, user_id, role, joined_seq, joined_at_ms, read_seq)| {
                (c, MemberRow { user_id, role, joined_seq, joined_at_ms, read_seq })
            })
            .collect())
    }

    // --- members ---

    pub async fn member(
        conn: &mut AnyConnection,
        conversation_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<MemberRow>> {
        sqlx::query_as(sql(&[MEMBER, " WHERE conversation_id = ? AND user_id = ?"]))
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(conn)
            .await
    }

    /// Members in joining order (oldest first).
    pub async fn members(conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<Vec<MemberRow>> {
        sqlx::query_as(sql(&[MEMBER, " WHERE conversation_id = ? ORDER BY joined_seq, user_id"]))
            .bind(conversation_id)
            .fetch_all(conn)
            .await
    }

    pub async fn insert_member(
        conn: &mut AnyConnection,
        conversation_id: &str,
        user_id: &str,
        role: &str,
        joined_seq: i64,
    ) -> sqlx::Result<MemberRow> {
        let joined_at_ms = now_ms();
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, role, joined_seq, joined_at_ms, read_seq) VALUES (?, ?, ?, ?, ?, 0)",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(role)
        .bind(joined_seq)
        .bind(joined_at_ms)
        .execute(&mut *conn)
        .await?;
        Self::count_members(conn, conversation_id, 1).await?;
        Ok(MemberRow { user_id: user_id.to_owned(), role: role.to_owned(), joined_seq, joined_at_ms, read_seq: 0 })
    }

    pub async fn set_role(
        conn: &mut AnyConnection,
        conversation_id: &str,
        user_id: &str,
        role: &str,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE members SET role = ? WHERE conversation_id = ? AND user_id = ?")
            .bind(role)
            .bind(conversation_id)
            .bind(user_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn delete_member(conn: &mut AnyConnection, conversation_id: &str, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        Self::count_members(conn, conversation_id, -1).await
    }

    async fn count_members(conn: &mut AnyConnection, conversation_id: &str, delta: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET member_count = member_count + ? WHERE id = ?")
            .bind(delta)
            .bind(conversation_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Moves the read position forward only; answers the position after the call.
    pub async fn mark_read(
        conn: &mut AnyConnection,
        conversation_id: &str,
        user_id: &str,
        seq: i64,
    ) -> sqlx::Result<i64> {
        sqlx::query("UPDATE members SET read_seq = ? WHERE conversation_id = ? AND user_id = ? AND read_seq < ?")
            .bind(seq)
            .bind(conversation_id)
            .bind(user_id)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        let (read,): (i64,) = sqlx::query_as("SELECT read_seq FROM members WHERE conversation_id = ? AND user_id = ?")
            .bind(conversation_id)
            .bind(user_id)
            .fetch_one(conn)
            .await?;
        Ok(read)
    }

    /// Messages from others after `read_seq`, not deleted.
    pub async fn unread(
        conn: &mut AnyConnection,
        conversation_id: &str,
        user_id: &str,
        read_seq: i64,
    ) -> sqlx::Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = ? AND seq > ? AND sender_id <> ? AND deleted = 0",
        )
        .bind(conversation_id)
        .bind(read_seq)
        .bind(user_id)
        .fetch_one(conn)
        .await?;
        Ok(n)
    }

    // --- messages ---

    pub async fn message(
        conn: &mut AnyConnection,
        conversation_id: &str,
        seq: i64,
    ) -> sqlx::Result<Option<MessageRow>> {
        sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? AND seq = ?"]))
            .bind(conversation_id)
            .bind(seq)
            .fetch_optional(conn)
            .await
    }

    /// The messages stored under any of the (sender, client id) pairs: a batch's retries in one
    /// query. Asks for the cross product of senders and client ids (both backends index that
    /// well) and keeps the exact pairs.
    pub async fn messages_by_clients(
        conn: &mut AnyConnection,
        pairs: &[(&str, &str)],
    ) -> sqlx::Result<Vec<MessageRow>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let senders: BTreeSet<&str> = pairs.iter().map(|(s, _)| *s).collect();
        let clients: BTreeSet<&str> = pairs.iter().map(|(_, c)| *c).collect();
        let mut query = QueryBuilder::<Any>::new(MESSAGE);
        query.push(" WHERE sender_id IN (");
        let mut list = query.separated(", ");
        for sender in &senders {
            list.push_bind(sender.to_string());
        }
        query.push(") AND client_id IN (");
        let mut list = query.separated(", ");
        for client in &clients {
            list.push_bind(client.to_string());
        }
        query.push(")");
        let rows: Vec<MessageRow> = query.build_query_as().fetch_all(conn).await?;
        let wanted: BTreeSet<(&str, &str)> = pairs.iter().copied().collect();
        Ok(rows.into_iter().filter(|m| wanted.contains(&(m.sender_id.as_str(), m.client_id.as_str()))).collect())
    }

    pub async fn last_message(conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<Option<MessageRow>> {
        sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1"]))
            .bind(conversation_id)
            .fetch_optional(conn)
            .await
    }

    /// Stores a batch of new messages in one statement.
    pub async fn insert_messages(conn: &mut AnyConnection, messages: &[Message]) -> sqlx::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::<Any>::new(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
             created_at_ms, edited_at_ms, deleted) ",
        );
        insert.push_values(messages, |mut row, m| {
            row.push_bind(m.conversation_id.clone())
                .push_bind(m.seq)
                .push_bind(m.sender_id.clone())
                .push_bind(m.client_id.clone())
                .push_bind(m.kind.clone())
                .push_bind(m.content.clone())
                .push_bind(m.url.clone())
                .push_bind(m.reply_to)
                .push_bind(m.created_at_ms)
                .push("NULL, 0");
        });
        insert.build().execute(conn).await?;
        Ok(())
    }

    pub async fn edit_message(
        conn: &mut AnyConnection,
        conversation_id: &str,
        seq: i64,
        content: &str,
        at_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query("UPDATE messages SET content = ?, edited_at_ms = ? WHERE conversation_id = ? AND seq = ?")
            .bind(content)
            .bind(at_ms)
            .bind(conversation_id)
            .bind(seq)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Keeps the row (its seq and client id stay taken) but not the content.
    pub async fn delete_message(conn: &mut AnyConnection, conversation_id: &str, seq: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE messages SET deleted = 1, content = '', url = NULL WHERE conversation_id = ? AND seq = ?")
            .bind(conversation_id)
            .bind(seq)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` messages strictly between `after` and `before`, ascending; the newest
    /// ones unless `oldest_first`.
    pub async fn history(
        conn: &mut AnyConnection,
        conversation_id: &str,
        after: i64,
        before: i64,
        limit: i64,
        oldest_first: bool,
    ) -> sqlx::Result<Vec<MessageRow>> {
        let order = if oldest_first { " ORDER BY seq ASC LIMIT ?" } else { " ORDER BY seq DESC LIMIT ?" };
        let mut rows: Vec<MessageRow> =
            sqlx::query_as(sql(&[MESSAGE, " WHERE conversation_id = ? AND seq > ? AND seq < ?", order]))
                .bind(conversation_id)
                .bind(after)
                .bind(before)
                .bind(limit)
                .fetch_all(conn)
                .await?;
        if !oldest_first {
            rows.reverse();
        }
        Ok(rows)
    }

    // --- the event log ---

    /// Takes the conversation's next seq (and marks the activity). The `UPDATE` locks the
    /// conversation row until the commit, so concurrent writers queue instead of colliding.
    pub async fn next_seq(conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<i64> {
        sqlx::query("UPDATE conversations SET last_seq = last_seq + 1, last_activity_ms = ? WHERE id = ?")
            .bind(now_ms())
            .bind(conversation_id)
            .execute(&mut *conn)
            .await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT last_seq FROM conversations WHERE id = ?")
            .bind(conversation_id)
            .fetch_one(conn)
            .await?;
        Ok(seq)
    }

    /// The conversation's last seq, locked until the commit, for a writer that takes many
    /// seqs at once and stores the last with [`Store::set_last_seq`]. SQLite needs no row lock:
    /// the writer holds the database's write lock (see [`Store::begin_write`]).
    pub async fn lock_last_seq(&self, conn: &mut AnyConnection, conversation_id: &str) -> sqlx::Result<Option<i64>> {
        let query = match self.db.backend() {
            Backend::Sqlite => "SELECT last_seq FROM conversations WHERE id = ? AND deleted = 0",
            Backend::MySql => "SELECT last_seq FROM conversations WHERE id = ? AND deleted = 0 FOR UPDATE",
        };
        let row: Option<(i64,)> = sqlx::query_as(query).bind(conversation_id).fetch_optional(conn).await?;
        Ok(row.map(|(seq,)| seq))
    }

    pub async fn set_last_seq(conn: &mut AnyConnection, conversation_id: &str, last_seq: i64) -> sqlx::Result<()> {
        sqlx::query("UPDATE conversations SET last_seq = ?, last_activity_ms = ? WHERE id = ?")
            .bind(last_seq)
            .bind(now_ms())
            .bind(conversation_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Stores events in the log and queues them for the stream, a batch per statement.
    pub async fn record(conn: &mut AnyConnection, events: &[ChatEvent]) -> sqlx::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut log = QueryBuilder::<Any>::new("INSERT INTO events (conversation_id, seq, payload) ");
        log.push_values(events, |mut row, e| {
            row.push_bind(e.conversation_id.clone()).push_bind(e.seq).push_bind(e.encode_to_vec());
        });
        log.build().execute(&mut *conn).await?;
        let mut outbox = QueryBuilder::<Any>::new("INSERT INTO event_outbox (conversation_id, seq) ");
        outbox.push_values(events, |mut row, e| {
            row.push_bind(e.conversation_id.clone()).push_bind(e.seq);
        });
        outbox.build().execute(conn).await?;
        Ok(())
    }

    /// Up to `limit` events after `after`, the newest ones, in seq order (encoded).
    pub async fn events_after(
        conn: &mut AnyConnection,
        conversation_id: &str,
        after: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, Vec<u8>)>> {
        let mut rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, payload FROM events WHERE conversation_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(conversation_id)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        rows.reverse();
        Ok(rows)
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
