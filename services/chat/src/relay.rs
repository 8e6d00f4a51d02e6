//! Fan-out of committed conversation events to the `SOULCHAT_CHAT` stream: the chat worker's
//! source for the runtime's relay ([`soulchat_runtime::relay`]), which publishes, prunes and
//! runs on a thread of its own.
//!
//! Why not the runtime's outbox: that one names messages `<service>:<outbox id>`, while chat
//! events must be named `<conversation_id>:<seq>` so that the stream's de-duplication and every
//! consumer recognise an event however often it is published. Each event is stored once, in the
//! `events` log (resume reads it too); the transaction that records it also adds its key to
//! `event_outbox` (with the `traceparent` of the request that made it, published as a header so
//! that the fan-out joins its trace), and its commit wakes the relay (see `Store::record`).
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

/// The `event_outbox` table, read with the events it names.
pub struct EventOutbox;

type OutboxRow = (i64, String, i64, Option<Vec<u8>>, Option<String>);

impl Source for EventOutbox {
    const TABLE: &'static str = "event_outbox";

    async fn pending(&self, db: &Database, after: i64, limit: usize) -> anyhow::Result<Vec<Pending>> {
        let mut conn = db.reads().await?;
        let rows: Vec<OutboxRow> = conn
            .fetch_all(
                sqlx::query_as(
                    "SELECT o.id, o.conversation_id, o.seq, e.payload, o.traceparent FROM event_outbox o \
                     LEFT JOIN events e ON e.conversation_id = o.conversation_id AND e.seq = o.seq \
                     WHERE o.id > ? ORDER BY o.id LIMIT ?",
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
            // No payload: the conversation was deleted before its earlier events left; the
            // deletion event (kept) tells the members.
            let Some(payload) = payload else {
                pending.push(Pending { id, publish: None });
                continue;
            };
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
