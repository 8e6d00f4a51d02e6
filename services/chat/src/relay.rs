//! Fan-out of committed conversation events to the `SOULCHAT_CHAT` stream: the chat worker's
//! source for the runtime's relay ([`soulchat_runtime::relay`]), which publishes, prunes and
//! runs on a thread of its own.
//!
//! Why not the runtime's outbox: that one names messages `<service>:<outbox id>`, while chat
//! events must be named `<conversation_id>:<seq>` so that the stream's de-duplication and every
//! consumer recognise an event however often it is published. Each event is stored once, in the
//! `events` log (resume reads it too), under a `position` that follows commit order (see
//! `store::events`), so the log is the queue: the relay reads past its cursor and records the
//! cursor (`event_log.relayed`) at most once a second, where an outbox table would cost an insert
//! and a delete per event. Each event goes out with the `traceparent` of the request that made
//! it, so that the fan-out joins its trace.
//!
//! Recipients are added here rather than stored with every event: the members at the event's
//! seq (those whose `joined_seq` is not later) who are still members when it is published, plus
//! whoever the event itself removes. The gateway delivers each event to
//! `soulchat.deliver.<user_id>` for every recipient. The conversation's kind goes along, for consumers
//! such as the notification worker that treat direct and group conversations differently.

use std::collections::HashMap;

use async_nats::jetstream::message::PublishMessage;
use prost::Message as _;
use soulchat_runtime::relay::{Pending, Source};
use soulchat_runtime::{Database, Reads};
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::{headers, streams, wire};

use crate::store::Store;

/// Conversations per audience look-up: keeps the statement's parameters few.
const AUDIENCE_CHUNK: usize = 128;

/// The event log, by position.
pub struct EventLog;

type LogRow = (i64, String, i64, Vec<u8>, Option<String>);

impl Source for EventLog {
    const TABLE: &'static str = "events";

    /// Positions follow commit order on both backends (see `store::events`).
    fn ordered(&self, _db: &Database) -> bool {
        true
    }

    async fn start(&self, db: &Database) -> anyhow::Result<i64> {
        Ok(Store::relayed(&mut db.reads().await?).await?)
    }

    async fn release_through(&self, db: &Database, upto: i64) -> anyhow::Result<()> {
        let mut tx = db.begin().await?;
        Store::set_relayed(&mut tx, upto).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Never called: the log is ordered.
    async fn release(&self, _db: &Database, _ids: &[i64]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn pending(&self, db: &Database, after: i64, limit: usize) -> anyhow::Result<Vec<Pending>> {
        let mut conn = db.reads().await?;
        let rows: Vec<LogRow> = conn
            .fetch_all(
                sqlx::query_as(
                    "SELECT position, conversation_id, seq, payload, traceparent FROM events \
                     WHERE position > ? ORDER BY position LIMIT ?",
                )
                .bind(after)
                .bind(limit as i64),
            )
            .await?;
        let mut conversations: Vec<&str> = rows.iter().map(|(_, c, _, _, _)| c.as_str()).collect();
        conversations.sort_unstable();
        conversations.dedup();
        // Gone with a deletion: its last event (conversation_deleted) goes out kindless.
        let mut audiences = HashMap::new();
        for chunk in conversations.chunks(AUDIENCE_CHUNK) {
            audiences.extend(Store::audiences(&mut conn, chunk).await?);
        }
        let nobody = (String::new(), Vec::new());
        let mut pending = Vec::with_capacity(rows.len());
        for (id, conversation_id, seq, payload, traceparent) in rows {
            let mut event = ChatEvent::decode(payload.as_slice())?;
            let (kind, members) = audiences.get(&conversation_id).unwrap_or(&nobody);
            event.recipients = recipients(&event, members);
            event.conversation_kind = kind.clone();
            let mut message = PublishMessage::build()
                .payload(event.encode_to_vec().into())
                .message_id(format!("{conversation_id}:{seq}"))
                .header(headers::CONTENT_TYPE, wire::PROTOBUF);
            if let Some(traceparent) = traceparent {
                message = message.header(headers::TRACEPARENT, traceparent.as_str());
            }
            pending.push(Pending { id, publish: Some((streams::chat_events(&conversation_id), message)) });
        }
        Ok(pending)
    }
}

fn recipients(event: &ChatEvent, members: &[(String, i64)]) -> Vec<String> {
    let mut to: Vec<String> =
        members.iter().filter(|(_, joined)| *joined <= event.seq).map(|(user, _)| user.clone()).collect();
    match &event.event {
        Some(Event::MemberRemoved(removed)) => to.push(removed.user_id.clone()),
        Some(Event::ConversationDeleted(deleted)) => to.extend(deleted.member_ids.iter().cloned()),
        _ => {}
    }
    to.sort();
    to.dedup();
    to
}
