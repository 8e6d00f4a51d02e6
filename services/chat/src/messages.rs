//! Message operations: send (through the group committer), edit, delete, history, threads
//! and read receipts.

use std::slice;
use std::sync::Arc;

use soulchat_runtime::{Reads, RequestContext, Result, WriteTx};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;

use crate::access::{self, Role};
use crate::log;
use crate::store::{MessageRow, Store};
use crate::validate;
use crate::{Chat, attachments};

fn message_not_found() -> ServiceError {
    ServiceError::not_found("message")
}

pub async fn send(chat: Arc<Chat>, ctx: RequestContext, mut req: SendRequest) -> Result<MessageReply> {
    let me = ctx.user_id()?.to_owned();
    validate::send(&mut req)?;
    req.client_id = req.client_id.trim().to_owned();
    // A retry of a send that was stored is the committer's to answer, even if its attachment
    // has gone since (deleted with the message): only a new send must find its attachment.
    if let Some(id) = &req.attachment_id {
        let sent = Store::messages_by_clients(&mut chat.store.db().reads().await?, &[(&me, &req.client_id)]).await?;
        if sent.is_empty() {
            attachments::check_send(&chat.attachments, id, &me, &req.kind).await?;
        }
    }
    let mut reply = chat.committer.send(me.clone(), req).await?;
    // A retry answers with the original, which others may have reacted to meanwhile.
    if let (true, Some(message)) = (reply.duplicate, reply.message.as_mut()) {
        let mut conn = chat.store.db().reads().await?;
        Store::attach(&mut conn, Some(&me), slice::from_mut(message)).await?;
    }
    Ok(reply)
}

pub async fn edit(chat: Arc<Chat>, ctx: RequestContext, req: EditRequest) -> Result<MessageReply> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    validate::content(&mut v, &req.content, true);
    validate::mentions(&mut v, &req.mention_ids);
    v.finish()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, _) = access::membership(&mut tx, &req.conversation_id, me).await?;
    let message = live_message(&mut tx, &row.id, req.seq).await?;
    if message.sender_id != me {
        return Err(ServiceError::forbidden("message", "can be edited only by its sender").into());
    }
    let at = now_ms();
    Store::edit_message(&mut tx, &row.id, req.seq, &req.content, &req.mention_ids, at).await?;
    let mut edited = Message {
        content: req.content.clone(),
        mention_ids: req.mention_ids.clone(),
        edited_at_ms: Some(at),
        ..message.to_proto()
    };
    // The event's reactions are everyone's (no `me`); the editor's answer has theirs.
    Store::attach(&mut tx, None, slice::from_mut(&mut edited)).await?;
    log::append(&chat.store, &mut tx, &row.id, me, |_| Event::MessageEdited(edited.clone())).await?;
    Store::attach(&mut tx, Some(me), slice::from_mut(&mut edited)).await?;
    tx.commit().await?;
    Ok(MessageReply { message: Some(edited), duplicate: false })
}

pub async fn delete_message(chat: Arc<Chat>, ctx: RequestContext, req: DeleteMessageRequest) -> Result<Empty> {
    let me = ctx.user_id()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    let message = Store::message(&mut tx, &row.id, req.seq).await?.ok_or_else(message_not_found)?;
    if message.sender_id != me {
        access::require(&mine, Role::Admin)?;
    }
    remove(&chat.store, &mut tx, &message, me).await?;
    tx.commit().await?;
    if let Some(id) = &message.attachment_id {
        attachments::release(&chat, id).await;
    }
    Ok(Empty {})
}

/// Deletes a message as `actor` (its sender, an admin of the conversation, or an administrator
/// resolving a report), with its event; deleting twice is the same as once.
pub async fn remove(store: &Store, tx: &mut WriteTx<'_>, message: &MessageRow, actor: &str) -> sqlx::Result<()> {
    if message.deleted != 0 {
        return Ok(());
    }
    Store::delete_message(tx, &message.conversation_id, message.seq).await?;
    Store::clear_reactions(tx, &message.conversation_id, message.seq).await?;
    // Unpinned silently: the deletion's event says enough.
    Store::unpin(tx, &message.conversation_id, message.seq).await?;
    let deleted = MessageDeleted { seq: message.seq };
    log::append(store, tx, &message.conversation_id, actor, |_| Event::MessageDeleted(deleted)).await?;
    Ok(())
}

pub async fn live_message(r: &mut impl Reads, conversation_id: &str, seq: i64) -> Result<MessageRow> {
    Ok(Store::message(r, conversation_id, seq).await?.filter(|m| m.deleted == 0).ok_or_else(message_not_found)?)
}

pub async fn history(chat: Arc<Chat>, ctx: RequestContext, req: HistoryRequest) -> Result<MessageList> {
    page(&chat, &ctx, &req.conversation_id, None, (req.before, req.after), req.limit).await
}

/// A thread's replies, paged as history; the root must be a message of the conversation.
pub async fn thread(chat: Arc<Chat>, ctx: RequestContext, req: ThreadRequest) -> Result<MessageList> {
    page(&chat, &ctx, &req.conversation_id, Some(req.root), (req.before, req.after), req.limit).await
}

/// A page of the main history (`thread` none) or of one thread.
async fn page(
    chat: &Chat,
    ctx: &RequestContext,
    conversation_id: &str,
    thread: Option<i64>,
    (before, after): (Option<i64>, Option<i64>),
    limit: Option<u32>,
) -> Result<MessageList> {
    let me = ctx.user_id()?;
    let limit = validate::limit(limit)?;
    if before.is_some() && after.is_some() {
        return Err(ServiceError::invalid("before", "cannot be combined with after").into());
    }
    let mut conn = chat.store.db().reads().await?;
    let (row, _) = access::membership(&mut conn, conversation_id, me).await?;
    if let Some(root) = thread {
        Store::message(&mut conn, &row.id, root).await?.ok_or_else(message_not_found)?;
    }
    // One row more than asked says whether another page follows.
    let (rows, next_cursor) = if let Some(after) = after {
        let mut rows = Store::history(&mut conn, &row.id, thread, (after, i64::MAX), limit + 1, true).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|m| m.seq) } else { None };
        (rows, next)
    } else {
        let before = before.unwrap_or(i64::MAX);
        let mut rows = Store::history(&mut conn, &row.id, thread, (0, before), limit + 1, false).await?;
        let more = rows.len() as i64 > limit;
        if more {
            rows.remove(0);
        }
        let next = if more { rows.first().map(|m| m.seq) } else { None };
        (rows, next)
    };
    let mut messages: Vec<Message> = rows.iter().map(MessageRow::to_proto).collect();
    Store::attach(&mut conn, Some(me), &mut messages).await?;
    Ok(MessageList { messages, next_cursor })
}

/// A read receipt. The membership and the recipients are read before the write transaction
/// (and the read connection let go), so that it holds the writer's turn, which the group
/// committer waits for too on SQLite, for the update alone.
pub async fn mark_read(chat: Arc<Chat>, ctx: RequestContext, req: MarkReadRequest) -> Result<ReadReply> {
    let me = ctx.user_id()?;
    if req.seq < 0 {
        return Err(ServiceError::invalid("seq", "is invalid").into());
    }
    let db = chat.store.db();
    let mut conn = db.reads().await?;
    let (row, _) = access::membership(&mut conn, &req.conversation_id, me).await?;
    let recipients = Store::members(&mut conn, &row.id).await?.into_iter().map(|m| m.user_id).collect();
    drop(conn);
    let mut tx = db.begin().await?;
    let read_seq = Store::mark_read(&mut tx, &row.id, me, req.seq.min(row.last_seq)).await?;
    tx.commit().await?;
    Ok(ReadReply { conversation_id: row.id, user_id: me.to_owned(), read_seq, recipients })
}
