//! Reactions: a member adds or removes an emoji on a live message. A call that changes
//! something is a conversation event (`reaction_changed`) under the conversation's next seq; one
//! that changes nothing (adding twice, removing what is not there) records nothing and answers
//! with the message as it is.

use std::slice;
use std::sync::Arc;

use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::{MessageReply, ReactionChanged, ReactionRequest};
use soulchat_subjects::time::now_ms;

use crate::Chat;
use crate::access;
use crate::log;
use crate::messages::live_message;
use crate::store::Store;
use crate::validate::{self, DISTINCT_REACTIONS_MAX};

pub async fn add(chat: Arc<Chat>, ctx: RequestContext, req: ReactionRequest) -> Result<MessageReply> {
    change(chat, ctx, req, true).await
}

pub async fn remove(chat: Arc<Chat>, ctx: RequestContext, req: ReactionRequest) -> Result<MessageReply> {
    change(chat, ctx, req, false).await
}

async fn change(chat: Arc<Chat>, ctx: RequestContext, req: ReactionRequest, add: bool) -> Result<MessageReply> {
    let me = ctx.user_id()?;
    validate::emoji(&req.emoji)?;
    let mut tx = chat.store.db().begin().await?;
    let (row, _) = access::membership(&mut tx, &req.conversation_id, me).await?;
    let message = live_message(&mut tx, &row.id, req.seq).await?;
    // Taking the seq locks the conversation first (the lock order of `store::events`), so that
    // concurrent reactions to one message queue and the count of distinct emoji holds.
    let seq = Store::next_seq(&mut tx, &row.id).await?;
    let (mine, distinct, used) = Store::reaction_state(&mut tx, &row.id, req.seq, me, &req.emoji).await?;
    let changed = match (add, mine) {
        (true, false) => {
            if !used && distinct >= DISTINCT_REACTIONS_MAX {
                let problem =
                    format!("is one too many (a message has at most {DISTINCT_REACTIONS_MAX} distinct emoji)");
                return Err(ServiceError::invalid("emoji", &problem).into());
            }
            Store::add_reaction(&mut tx, &row.id, req.seq, me, &req.emoji, now_ms()).await?;
            true
        }
        (false, true) => Store::remove_reaction(&mut tx, &row.id, req.seq, me, &req.emoji).await?,
        _ => false,
    };
    if changed {
        let event = ReactionChanged { message_seq: req.seq, emoji: req.emoji.clone(), added: add };
        log::record_at(&chat.store, &mut tx, &row.id, seq, me, Event::ReactionChanged(event)).await?;
    }
    let mut view = message.to_proto();
    Store::attach(&mut tx, Some(me), slice::from_mut(&mut view)).await?;
    if changed {
        tx.commit().await?;
    }
    // Unchanged: dropping the transaction gives the seq back.
    Ok(MessageReply { message: Some(view), duplicate: false })
}
