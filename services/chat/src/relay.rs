//! Fan-out of committed conversation events to the `SOULCHAT_CHAT` stream.
//!
//! Why not the runtime's outbox: that one names messages `<service>:<outbox id>`, while chat
//! events must be named `<conversation_id>:<seq>` so that the stream's de-duplication and every
//! consumer recognise an event however often it is published. Each event is stored once, in the
//! `events` log (resume reads it too); the transaction that records it also adds its key to
//! `event_outbox`. This relay publishes what the outbox names, in commit order, pipelined
//! (`send_publish` for the whole batch, then the acks), and deletes the rows JetStream
//! acknowledged. On SQLite, where writers are serialised and so outbox ids are in commit order,
//! it only remembers how far it got and deletes at most once per [`PRUNE_EVERY`], in one
//! statement: under load every delete is another fsync contending with the committer for the
//! single writer. (On MySQL a transaction may commit after one with a higher id, so there it
//! deletes exactly the rows it published.) A crash between commit and publish loses nothing;
//! publishing again what was acknowledged but not yet deleted (after a restart, or with two
//! replicas relaying) is absorbed by the stream's de-duplication window, which outlasts
//! [`PRUNE_EVERY`] by far.
//!
//! Recipients are added here rather than stored with every event: the members at the event's
//! seq (those whose `joined_seq` is not later) who are still members when it is published, plus
//! whoever the event itself removes. The gateway delivers each event to
//! `soulchat.deliver.<user_id>` for every recipient. The conversation's kind goes along, for consumers
//! such as the notification worker that treat direct and group conversations differently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use prost::Message as _;
use soulchat_runtime::{Backend, Database, dedicated};
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::{headers, streams, wire};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

const BATCH: i64 = 512;
/// How often the relay looks for rows written by another replica (this one wakes at once).
const POLL: Duration = Duration::from_secs(1);
/// How often acknowledged rows are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// How far this relay got: rows up to `acknowledged` are on the stream, rows up to `pruned` are
/// deleted.
#[derive(Default)]
struct Progress {
    acknowledged: i64,
    pruned: i64,
    last_prune: Option<tokio::time::Instant>,
}

#[derive(Clone, Default)]
pub struct Relay {
    wake: Arc<Notify>,
}

impl Relay {
    /// Tells the relay that committed events are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Relays until `stop`, then makes one last pass so committed events leave promptly. Runs on
    /// a thread of its own: every delivery waits for it.
    pub fn spawn(
        &self,
        db: Database,
        js: jetstream::Context,
        stop: CancellationToken,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let relay = self.clone();
        dedicated::spawn("chat-relay", async move {
            let mut failures = 0u32;
            let mut progress = Progress::default();
            loop {
                match relay_batch(&db, &js, &mut progress).await {
                    Ok(n) => {
                        failures = 0;
                        if n == BATCH as usize {
                            continue;
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!("chat event relay: {e:#}");
                    }
                }
                let wait = if failures == 0 { POLL } else { POLL * 2u32.saturating_pow(failures.min(4)) };
                tokio::select! {
                    _ = relay.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => {
                        loop {
                            match relay_batch(&db, &js, &mut progress).await {
                                Ok(n) if n == BATCH as usize => continue,
                                Ok(_) => break,
                                Err(e) => {
                                    tracing::warn!("chat event relay at shutdown: {e:#}");
                                    break;
                                }
                            }
                        }
                        if let Err(e) = prune(&db, &mut progress).await {
                            tracing::warn!("chat event relay pruning at shutdown: {e:#}");
                        }
                        return;
                    }
                }
            }
        })
    }
}

type OutboxRow = (i64, String, i64, Option<Vec<u8>>);

/// Publishes up to one batch after what was acknowledged, and prunes when it is time.
async fn relay_batch(db: &Database, js: &jetstream::Context, progress: &mut Progress) -> anyhow::Result<usize> {
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT o.id, o.conversation_id, o.seq, e.payload FROM event_outbox o \
         LEFT JOIN events e ON e.conversation_id = o.conversation_id AND e.seq = o.seq \
         WHERE o.id > ? ORDER BY o.id LIMIT ?",
    )
    .bind(if ordered(db) { progress.acknowledged } else { 0 })
    .bind(BATCH)
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        if progress.pruned < progress.acknowledged {
            prune(db, progress).await?;
        }
        return Ok(0);
    }
    let mut conversations: Vec<&str> = rows.iter().map(|(_, c, _, _)| c.as_str()).collect();
    conversations.sort_unstable();
    conversations.dedup();
    // Gone with a deletion: its last event (conversation_deleted) goes out kindless.
    let mut audiences = HashMap::new();
    {
        let mut conn = db.pool().acquire().await?;
        for chunk in conversations.chunks(128) {
            audiences.extend(Store::audiences(&mut conn, chunk).await?);
        }
    }
    let nobody = (String::new(), Vec::new());
    let mut pending = Vec::with_capacity(rows.len());
    let mut done = Vec::with_capacity(rows.len());
    for (id, conversation_id, seq, payload) in &rows {
        let (id, seq) = (*id, *seq);
        // No payload: the conversation was deleted before its earlier events left; the
        // deletion event (kept) tells the members.
        let Some(payload) = payload else {
            done.push(id);
            continue;
        };
        let mut event = ChatEvent::decode(payload.as_slice())?;
        let (kind, members) = audiences.get(conversation_id).unwrap_or(&nobody);
        event.recipients = recipients(&event, members);
        event.conversation_kind = kind.clone();
        let message = PublishMessage::build()
            .payload(event.encode_to_vec().into())
            .message_id(format!("{conversation_id}:{seq}"))
            .header(headers::CONTENT_TYPE, wire::PROTOBUF);
        pending.push((id, js.send_publish(streams::chat_events(conversation_id), message).await?));
    }
    for (id, ack) in pending {
        ack.await?;
        done.push(id);
    }
    if !ordered(db) {
        let mut delete = sqlx::QueryBuilder::<sqlx::Any>::new("DELETE FROM event_outbox WHERE id IN (");
        let mut ids = delete.separated(", ");
        for id in &done {
            ids.push_bind(*id);
        }
        let mut tx = db.begin().await?;
        delete.push(")").build().execute(&mut *tx).await?;
        tx.commit().await?;
        return Ok(done.len());
    }
    // Rows come in id order and each one was acknowledged (or skipped) above, so the highest is
    // how far the stream has everything.
    progress.acknowledged = done.iter().copied().max().unwrap_or(progress.acknowledged).max(progress.acknowledged);
    if progress.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
        prune(db, progress).await?;
    }
    Ok(done.len())
}

/// Whether outbox ids are in commit order (one writer at a time), so a cursor is safe.
fn ordered(db: &Database) -> bool {
    db.backend() == Backend::Sqlite
}

/// Deletes every acknowledged row in one statement.
async fn prune(db: &Database, progress: &mut Progress) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM event_outbox WHERE id <= ?").bind(progress.acknowledged).execute(&mut *tx).await?;
    tx.commit().await?;
    progress.pruned = progress.acknowledged;
    progress.last_prune = Some(tokio::time::Instant::now());
    Ok(())
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
