//! The group committer's statements. Each statement is a round trip to the database (on SQLite,
//! to sqlx's worker thread and back), and under load every round trip waits its turn for a core,
//! so a batch of sends costs a fixed handful: one look-up of the senders' memberships with the
//! conversations' last seqs, and the writes, which on SQLite go in one round trip (several
//! statements in one string; MySQL takes one statement per call).

use std::collections::{HashMap, HashSet};

use prost::Message as _;
use soulchat_runtime::{Backend, WriteTx};
use soulchat_subjects::chat::messages::{ChatEvent, Message};
use soulchat_subjects::time::now_ms;
use sqlx::{Any, QueryBuilder};

use super::Store;
use super::members::push_pairs;

/// What the committer needs to know before taking seqs.
#[derive(Default)]
pub struct SendContext {
    /// Conversation -> its last seq, for the live conversations with a sending member.
    pub seqs: HashMap<String, i64>,
    /// (conversation, sender) pairs that are memberships.
    pub members: HashSet<(String, String)>,
}

impl Store {
    /// Which (conversation, sender) pairs are memberships of live conversations, with those
    /// conversations' last seqs, in one statement (the rows locked until the commit on MySQL).
    pub async fn send_context(&self, tx: &mut WriteTx<'_>, pairs: &[(&str, &str)]) -> sqlx::Result<SendContext> {
        let mut context = SendContext::default();
        if pairs.is_empty() {
            return Ok(context);
        }
        let mut q = QueryBuilder::<Any>::new(
            "SELECT c.id, c.last_seq, m.user_id FROM members m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.deleted = 0 AND (",
        );
        push_pairs(&mut q, ("m.conversation_id", "m.user_id"), pairs);
        q.push(")");
        if self.db.backend() == Backend::MySql {
            q.push(" FOR UPDATE");
        }
        let rows: Vec<(String, i64, String)> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (conversation, last_seq, user) in rows {
            context.seqs.insert(conversation.clone(), last_seq);
            context.members.insert((conversation, user));
        }
        Ok(context)
    }

    /// Stores a batch: the messages, their events (log and outbox, with the trace context of
    /// the send that made each) and the conversations' new last seqs. When there are events, the commit wakes the relay.
    pub async fn write_sends(
        &self,
        tx: &mut WriteTx<'_>,
        messages: &[Message],
        events: &[ChatEvent],
        traceparents: &[Option<String>],
        seqs: &[(&str, i64)],
    ) -> sqlx::Result<()> {
        let one_string = self.db.backend() == Backend::Sqlite;
        let mut statements = Vec::new();
        if !messages.is_empty() {
            push_insert_messages(next_statement(&mut statements, one_string), messages);
        }
        if !events.is_empty() {
            push_insert_events(next_statement(&mut statements, one_string), events);
            push_insert_outbox(next_statement(&mut statements, one_string), events, traceparents);
        }
        if !seqs.is_empty() {
            push_set_last_seqs(next_statement(&mut statements, one_string), seqs);
        }
        for mut statement in statements {
            statement.build().execute(&mut **tx).await?;
        }
        if !events.is_empty() {
            self.relay.wake_after_commit(tx);
        }
        Ok(())
    }
}

/// A builder for the next statement: a new one, or on SQLite the same one after a `;`.
fn next_statement(statements: &mut Vec<QueryBuilder<Any>>, one_string: bool) -> &mut QueryBuilder<Any> {
    if one_string && !statements.is_empty() {
        let last = statements.last_mut().expect("not empty");
        last.push("; ");
        return last;
    }
    statements.push(QueryBuilder::new(""));
    statements.last_mut().expect("just pushed")
}

pub(super) fn push_insert_messages(q: &mut QueryBuilder<Any>, messages: &[Message]) {
    q.push(
        "INSERT INTO messages (conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
         created_at_ms, edited_at_ms, deleted, metadata) ",
    );
    q.push_values(messages, |mut row, m| {
        row.push_bind(m.conversation_id.clone())
            .push_bind(m.seq)
            .push_bind(m.sender_id.clone())
            .push_bind(m.client_id.clone())
            .push_bind(m.kind.clone())
            .push_bind(m.content.clone())
            .push_bind(m.url.clone())
            .push_bind(m.reply_to)
            .push_bind(m.created_at_ms)
            .push("NULL, 0")
            .push_bind((!m.metadata.is_empty()).then(|| serde_json::to_string(&m.metadata).unwrap_or_default()));
    });
}

pub(super) fn push_insert_events(q: &mut QueryBuilder<Any>, events: &[ChatEvent]) {
    q.push("INSERT INTO events (conversation_id, seq, payload) ");
    q.push_values(events, |mut row, e| {
        row.push_bind(e.conversation_id.clone()).push_bind(e.seq).push_bind(e.encode_to_vec());
    });
}

/// Queues `events` for the relay, each with the `traceparent` of the request that made it.
pub(super) fn push_insert_outbox(q: &mut QueryBuilder<Any>, events: &[ChatEvent], traceparents: &[Option<String>]) {
    q.push("INSERT INTO event_outbox (conversation_id, seq, traceparent) ");
    q.push_values(events.iter().zip(traceparents), |mut row, (e, traceparent)| {
        row.push_bind(e.conversation_id.clone()).push_bind(e.seq).push_bind(traceparent.clone());
    });
}

/// Sets several conversations' last seq (and activity time) in one statement.
fn push_set_last_seqs(q: &mut QueryBuilder<Any>, seqs: &[(&str, i64)]) {
    q.push("UPDATE conversations SET last_seq = CASE id");
    for (id, seq) in seqs {
        q.push(" WHEN ").push_bind(id.to_string()).push(" THEN ").push_bind(*seq);
    }
    q.push(" ELSE last_seq END, last_activity_ms = ").push_bind(now_ms()).push(" WHERE id IN (");
    let mut list = q.separated(", ");
    for (id, _) in seqs {
        list.push_bind(id.to_string());
    }
    q.push(")");
}
