//! Full-text search of messages (migration 0006): SQLite's FTS5 table `messages_search`, or
//! MariaDB's FULLTEXT index on `messages.content`, joined with the caller's memberships so that
//! only their conversations are searched.

use soulchat_runtime::{Backend, Reads};

use super::messages::MESSAGE;
use super::{MessageRow, Store, sql};

/// The ranked hits: best first (`score` grows with relevance on both backends), newest first
/// among equals. Binds: the match expression, the user, [the conversation], limit, offset.
/// SQLite's `CROSS JOIN` keeps the join order as written: the full-text match runs once, first,
/// and each hit is looked up. Left to itself the planner may start from the caller's
/// memberships and run the match once per message of theirs (seconds over a million messages).
const SQLITE_HITS: &str = "SELECT m.conversation_id, m.seq, -s.rank AS score FROM messages_search s \
     CROSS JOIN messages m ON m.rowid = s.rowid \
     CROSS JOIN members b ON b.conversation_id = m.conversation_id AND b.user_id = ? \
     WHERE messages_search MATCH ? AND m.deleted = 0";
const MYSQL_HITS: &str = "SELECT m.conversation_id, m.seq, MATCH (m.content) AGAINST (? IN BOOLEAN MODE) AS score \
     FROM messages m JOIN members b ON b.conversation_id = m.conversation_id AND b.user_id = ? \
     WHERE MATCH (m.content) AGAINST (? IN BOOLEAN MODE) AND m.deleted = 0";
const ORDER: &str = " ORDER BY score DESC, created_at_ms DESC, conversation_id, seq DESC";

impl Store {
    /// A page of the messages in `user_id`'s conversations (or only `conversation_id`) that hold
    /// every one of `words` (each a prefix of a word), best match first.
    pub async fn search(
        &self,
        r: &mut impl Reads,
        user_id: &str,
        words: &[String],
        conversation_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<MessageRow>> {
        let one = if conversation_id.is_some() { " AND m.conversation_id = ?" } else { "" };
        // `created_at_ms` for the inner order: the outer query has it from `messages`.
        let inner_order = " ORDER BY score DESC, m.created_at_ms DESC, m.conversation_id, m.seq DESC LIMIT ? OFFSET ?";
        let (hits, expression) = match self.db.backend() {
            // Words are letters and digits only (see `validate::search_words`): no operator
            // can come from the caller.
            Backend::Sqlite => (SQLITE_HITS, words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" ")),
            Backend::MySql => (MYSQL_HITS, words.iter().map(|w| format!("+{w}*")).collect::<Vec<_>>().join(" ")),
        };
        let text = sql(&[MESSAGE, " JOIN (", hits, one, inner_order, ") hits USING (conversation_id, seq)", ORDER]);
        let mut query = sqlx::query_as(text);
        query = match self.db.backend() {
            Backend::Sqlite => query.bind(user_id.to_owned()).bind(expression),
            Backend::MySql => query.bind(expression.clone()).bind(user_id.to_owned()).bind(expression),
        };
        if let Some(id) = conversation_id {
            query = query.bind(id.to_owned());
        }
        r.fetch_all(query.bind(limit).bind(offset)).await
    }
}
