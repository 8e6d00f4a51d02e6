//! Appending to a conversation's event log: the event takes the conversation's next seq and is
//! stored (for resume, and under the log's next position for the relay's fan-out) in the
//! caller's transaction, whose commit wakes the relay.

use soulchat_runtime::WriteTx;
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::time::now_ms;

use crate::store::Store;

/// Takes the next seq, builds the event for it and records it.
pub async fn append(
    store: &Store,
    tx: &mut WriteTx<'_>,
    conversation_id: &str,
    actor_id: &str,
    body: impl FnOnce(i64) -> Event,
) -> sqlx::Result<ChatEvent> {
    let seq = Store::next_seq(tx, conversation_id).await?;
    record_at(store, tx, conversation_id, seq, actor_id, body(seq)).await
}

/// Records an event under a seq the caller already took with [`Store::next_seq`].
pub async fn record_at(
    store: &Store,
    tx: &mut WriteTx<'_>,
    conversation_id: &str,
    seq: i64,
    actor_id: &str,
    body: Event,
) -> sqlx::Result<ChatEvent> {
    let event = event(conversation_id, seq, actor_id, body);
    store.record(tx, std::slice::from_ref(&event), &[soulchat_subjects::trace::current()]).await?;
    Ok(event)
}

/// The event itself, for a caller that records a batch at once.
pub fn event(conversation_id: &str, seq: i64, actor_id: &str, body: Event) -> ChatEvent {
    ChatEvent {
        conversation_id: conversation_id.to_owned(),
        seq,
        at_ms: now_ms(),
        actor_id: actor_id.to_owned(),
        // Both filled when published (see `relay`), never stored.
        recipients: Vec::new(),
        conversation_kind: String::new(),
        // Filled by the committer for a thread reply.
        thread_participant_ids: Vec::new(),
        event: Some(body),
    }
}
