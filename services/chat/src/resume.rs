//! Resume after a disconnect: the events a user missed in each of their conversations, in seq
//! order, from the log the same transactions wrote. At most [`MAX_EVENTS`] per conversation: a
//! client that missed more gets the newest ones and `truncated`, and reads the rest as history.
//! The same holds when the missed events are older than the log keeps (`retention`): every seq
//! of a conversation is an event, so a first kept seq beyond the client's next says that some
//! were pruned, and `from_seq` says where the replay starts (past `last_seq` if nothing is left).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use prost::Message as _;
use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::chat::messages::*;

use crate::Chat;
use crate::store::Store;

const MAX_EVENTS: i64 = 1000;

pub async fn resume(chat: Arc<Chat>, ctx: RequestContext, req: ResumeRequest) -> Result<ResumeReply> {
    let me = ctx.user_id()?;
    let mut conn = chat.store.db().reads().await?;
    let mine: BTreeMap<String, (i64, i64)> = Store::resume_points(&mut conn, me)
        .await?
        .into_iter()
        .map(|(conversation, joined_seq, last_seq)| (conversation, (joined_seq, last_seq)))
        .collect();
    let gone = req.conversations.keys().filter(|c| !mine.contains_key(*c)).cloned().collect();
    let mut conversations = Vec::new();
    for (conversation_id, &(joined_seq, last_seq)) in &mine {
        // Never before the joining event: what came earlier was not this member's to see live.
        let seen = req.conversations.get(conversation_id).copied().unwrap_or(0).max(joined_seq - 1);
        if seen >= last_seq {
            continue;
        }
        let rows = Store::events_after(&mut conn, conversation_id, seen, MAX_EVENTS + 1).await?;
        let rows = if rows.len() as i64 > MAX_EVENTS { &rows[1..] } else { &rows[..] };
        let from_seq = rows.first().map_or(last_seq + 1, |(seq, _)| *seq);
        let truncated = from_seq > seen + 1;
        let events = rows
            .iter()
            .map(|(_, payload)| ChatEvent::decode(payload.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("undecodable event in the log of conversation {conversation_id}"))?;
        conversations.push(ResumedConversation {
            conversation_id: conversation_id.clone(),
            truncated,
            from_seq,
            events,
        });
    }
    Ok(ResumeReply { conversations, gone })
}
