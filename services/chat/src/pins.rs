//! Pinned messages: in a group the admins and the owner pin, in a direct conversation either
//! member. A pin or unpin that changes something is a conversation event (`pin_changed`) under
//! the conversation's next seq; one that changes nothing records nothing.

use std::slice;
use std::sync::Arc;

use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::{Message, Pin, PinChanged, PinList, PinReply, PinRequest, PinsRequest};
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;

use crate::Chat;
use crate::access::{self, Role};
use crate::log;
use crate::messages::live_message;
use crate::store::{ConversationRow, MemberRow, PinRow, Store};

const MAX_PINS: i64 = 50;

fn may_pin(conversation: &ConversationRow, member: &MemberRow) -> Result<(), ServiceError> {
    if conversation.is_group() { access::require(member, Role::Admin) } else { Ok(()) }
}

pub async fn pin(chat: Arc<Chat>, ctx: RequestContext, req: PinRequest) -> Result<PinReply> {
    let me = ctx.user_id()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    may_pin(&row, &mine)?;
    let message = live_message(&mut tx, &row.id, req.seq).await?;
    // Taking the seq locks the conversation first, so that concurrent pins respect the limit.
    let seq = Store::next_seq(&mut tx, &row.id).await?;
    let (pinned_by_id, pinned_at_ms, changed) = match Store::pin_of(&mut tx, &row.id, req.seq).await? {
        Some((by, at)) => (by, at, false),
        None => {
            if Store::pin_count(&mut tx, &row.id).await? >= MAX_PINS {
                let problem = format!("are too many (a conversation has at most {MAX_PINS} pinned messages)");
                return Err(ServiceError::invalid("pins", &problem).into());
            }
            let at = now_ms();
            Store::pin(&mut tx, &row.id, req.seq, me, at).await?;
            let event = PinChanged { message_seq: req.seq, pinned: true };
            log::record_at(&chat.store, &mut tx, &row.id, seq, me, Event::PinChanged(event)).await?;
            (me.to_owned(), at, true)
        }
    };
    let mut view = message.to_proto();
    Store::attach(&mut tx, Some(me), slice::from_mut(&mut view)).await?;
    if changed {
        tx.commit().await?;
    }
    Ok(PinReply { pin: Some(Pin { message: Some(view), pinned_by_id, pinned_at_ms }) })
}

pub async fn unpin(chat: Arc<Chat>, ctx: RequestContext, req: PinRequest) -> Result<Empty> {
    let me = ctx.user_id()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    may_pin(&row, &mine)?;
    let seq = Store::next_seq(&mut tx, &row.id).await?;
    if Store::unpin(&mut tx, &row.id, req.seq).await? {
        let event = PinChanged { message_seq: req.seq, pinned: false };
        log::record_at(&chat.store, &mut tx, &row.id, seq, me, Event::PinChanged(event)).await?;
        tx.commit().await?;
    }
    Ok(Empty {})
}

pub async fn pins(chat: Arc<Chat>, ctx: RequestContext, req: PinsRequest) -> Result<PinList> {
    let me = ctx.user_id()?;
    let mut conn = chat.store.db().reads().await?;
    let (row, _) = access::membership(&mut conn, &req.conversation_id, me).await?;
    let rows = Store::pins(&mut conn, &row.id).await?;
    let mut messages: Vec<Message> = rows.iter().map(|p| p.message.to_proto()).collect();
    Store::attach(&mut conn, Some(me), &mut messages).await?;
    let pins = rows
        .into_iter()
        .zip(messages)
        .map(|(PinRow { pinned_by, pinned_at_ms, .. }, message)| Pin {
            message: Some(message),
            pinned_by_id: pinned_by,
            pinned_at_ms,
        })
        .collect();
    Ok(PinList { pins })
}
