//! Appending to a conversation's event log: the event takes the conversation's next seq and is
//! stored (for resume) and queued for the stream (for fan-out) in the caller's transaction.

use soulchat_runtime::now_ms;
use soulchat_subjects::chat::messages::ChatEvent;
use soulchat_subjects::chat::messages::chat_event::Event;
use sqlx::AnyConnection;

use crate::store::Store;

/// Takes the next seq, builds the event for it and records it.
pub async fn append(
    conn: &mut AnyConnection,
    conversation_id: &str,
    actor_id: &str,
    body: impl FnOnce(i64) -> Event,
) -> sqlx::Result<ChatEvent> {
    let seq = Store::next_seq(conn, conversation_id).await?;
    record_at(conn, conversation_id, seq, actor_id, body(seq)).await
}

/// Records an event under a seq the caller already took with [`Store::next_seq`].
pub async fn record_at(
    conn: &mut AnyConnection,
    conversation_id: &str,
    seq: i64,
    actor_id: &str,
    body: Event,
) -> sqlx::Result<ChatEvent> {
    let event = event(conversation_id, seq, actor_id, body);
    Store::record(conn, std::slice::from_ref(&event)).await?;
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
        event: Some(body),
    }
}
