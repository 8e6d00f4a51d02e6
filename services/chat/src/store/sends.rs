//! The group committer's statements. Each statement is a round trip to the database (on SQLite,
//! to sqlx's worker thread and back), and under load every round trip waits its turn for a core,
//! so a batch of sends costs a fixed handful: one look-up of the senders' memberships with the
//! conversations' last seqs, then one multi-row statement per table (per [`reusable_chunks`],
//! so that their prepared forms are reused).

use std::collections::{HashMap, HashSet};

use soulchat_runtime::{Backend, WriteTx, push_in_list};
use soulchat_subjects::chat::messages::{ChatEvent, Message};
use soulchat_subjects::time::now_ms;
use sqlx::{Any, QueryBuilder};

use super::members::push_pairs;
use super::messages::mentions_json;
use super::{Store, reusable_chunks};

/// What the committer needs to know before taking seqs.
#[derive(Default)]
pub struct SendContext {
    /// Conversation -> its last seq, for the live conversations with a sending member.
    pub seqs: HashMap<String, i64>,
    /// (conversation, sender) pairs that are memberships.
    pub members: HashSet<(String, String)>,
    /// (conversation, sender) pairs of direct conversations whose other member blocks the sender.
    pub blocked: HashSet<(String, String)>,
}

impl Store {
    /// Which (conversation, sender) pairs are memberships of live conversations, with those
    /// conversations' last seqs and whether the other member of a direct one blocks the sender,
    /// in one statement (the rows locked until the commit on MySQL). The block check is an index
    /// probe of `blocks` by the sender, empty for nearly every sender.
    pub async fn send_context(&self, tx: &mut WriteTx<'_>, pairs: &[(&str, &str)]) -> sqlx::Result<SendContext> {
        let mut context = SendContext::default();
        if pairs.is_empty() {
            return Ok(context);
        }
        let mut q = QueryBuilder::<Any>::new(
            "SELECT c.id, c.last_seq, m.user_id, CASE WHEN c.kind = 'direct' AND EXISTS (SELECT 1 FROM blocks b \
             JOIN members o ON o.conversation_id = c.id AND o.user_id = b.blocker_id WHERE b.blocked_id = m.user_id) \
             THEN 1 ELSE 0 END FROM members m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.deleted = 0 AND (",
        );
        push_pairs(&mut q, ("m.conversation_id", "m.user_id"), pairs);
        q.push(")");
        if self.db.backend() == Backend::MySql {
            q.push(" FOR UPDATE");
        }
        let rows: Vec<(String, i64, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        for (conversation, last_seq, user, blocked) in rows {
            context.seqs.insert(conversation.clone(), last_seq);
            if blocked != 0 {
                context.blocked.insert((conversation.clone(), user.clone()));
            }
            context.members.insert((conversation, user));
        }
        Ok(context)
    }

    /// Stores a batch: the messages, their events (with the trace context of the send that made
    /// each) and the conversations' new last seqs; the commit wakes the relay.
    pub async fn write_sends(
        &self,
        tx: &mut WriteTx<'_>,
        messages: &[Message],
        events: &[ChatEvent],
        traceparents: &[Option<String>],
        seqs: &[(&str, i64)],
    ) -> sqlx::Result<()> {
        for chunk in reusable_chunks(messages) {
            let mut insert = QueryBuilder::new("");
            push_insert_messages(&mut insert, chunk);
            insert.build().execute(&mut **tx).await?;
        }
        for chunk in reusable_chunks(seqs) {
            let mut update = QueryBuilder::new("");
            push_set_last_seqs(&mut update, chunk);
            update.build().execute(&mut **tx).await?;
        }
        self.record(tx, events, traceparents).await
    }
}

pub(super) fn push_insert_messages(q: &mut QueryBuilder<Any>, messages: &[Message]) {
    q.push(
        "INSERT INTO messages (conversation_id, seq, sender_id, client_id, kind, content, url, reply_to, \
         created_at_ms, edited_at_ms, deleted, metadata, attachment_id, mention_ids, thread_root) ",
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
            .push_bind((!m.metadata.is_empty()).then(|| serde_json::to_string(&m.metadata).unwrap_or_default()))
            .push_bind(m.attachment_id.clone())
            .push_bind(mentions_json(&m.mention_ids))
            .push_bind(m.thread_root);
    });
}

/// Sets several conversations' last seq (and activity time) in one statement.
fn push_set_last_seqs(q: &mut QueryBuilder<Any>, seqs: &[(&str, i64)]) {
    // Padded to a power of two like the IN list (a repeated WHEN is never reached): one statement
    // shape per size class.
    let padding = seqs.len().next_power_of_two() - seqs.len();
    q.push("UPDATE conversations SET last_seq = CASE id");
    for (id, seq) in seqs.iter().chain(std::iter::repeat_n(seqs.last().unwrap_or(&("", 0)), padding)) {
        q.push(" WHEN ").push_bind(id.to_string()).push(" THEN ").push_bind(*seq);
    }
    q.push(" ELSE last_seq END, last_activity_ms = ").push_bind(now_ms()).push(" WHERE id IN ");
    let ids: Vec<String> = seqs.iter().map(|(id, _)| id.to_string()).collect();
    push_in_list(q, &ids);
}
