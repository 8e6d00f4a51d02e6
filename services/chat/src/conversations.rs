//! Conversation operations: direct conversations (one per pair), groups, and the caller's list.

use std::collections::BTreeSet;
use std::sync::Arc;

use soulchat_runtime::database::internal;
use soulchat_runtime::{Database, RequestContext};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;
use sqlx::AnyConnection;

use crate::Chat;
use crate::access::{self, Role};
use crate::log;
use crate::store::{ConversationRow, MemberRow, Store};
use crate::validate::{self, MAX_MEMBERS};

/// The conversation as `me` sees it: role, read position, unread count, last message, and the
/// members when asked.
pub async fn view(
    conn: &mut AnyConnection,
    c: &ConversationRow,
    me: &MemberRow,
    with_members: bool,
) -> sqlx::Result<Conversation> {
    let mut out = c.to_proto();
    out.my_role = me.role.clone();
    out.read_seq = me.read_seq;
    out.unread_count = Store::unread(conn, &c.id, &me.user_id, me.read_seq).await?;
    out.last_message = Store::last_message(conn, &c.id).await?.map(|m| m.to_proto());
    if with_members {
        out.members = Store::members(conn, &c.id).await?.iter().map(MemberRow::to_proto).collect();
    }
    Ok(out)
}

/// Creates a conversation with its members, all joining at its creation event (seq 1).
async fn create(
    conn: &mut AnyConnection,
    kind: &str,
    name: &str,
    description: &str,
    direct_key: Option<&str>,
    creator: &str,
    members: &[(&str, Role)],
) -> sqlx::Result<ConversationRow> {
    let id = uuid::Uuid::now_v7().to_string();
    Store::insert_conversation(conn, &id, kind, name, description, direct_key).await?;
    let seq = Store::next_seq(conn, &id).await?;
    for (user, role) in members {
        Store::insert_member(conn, &id, user, role.as_str(), seq).await?;
    }
    let row = Store::conversation(conn, &id).await?.ok_or(sqlx::Error::RowNotFound)?;
    let mut created = row.to_proto();
    created.members = Store::members(conn, &id).await?.iter().map(MemberRow::to_proto).collect();
    log::record_at(conn, &id, seq, creator, Event::ConversationCreated(created)).await?;
    Ok(row)
}

pub async fn open_direct(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: OpenDirectRequest,
) -> Result<ConversationReply, ServiceError> {
    let me = ctx.user_id()?;
    let other = req.user_id.trim();
    let mut v = Validation::new();
    validate::user_id(&mut v, "user_id", other);
    if other == me {
        v.problem("user_id", "cannot be yourself");
    }
    v.finish()?;
    let key = if me < other { format!("{me}:{other}") } else { format!("{other}:{me}") };

    let mut conn = chat.store.db().pool().acquire().await.map_err(internal)?;
    if let Some(found) = existing_direct(&mut conn, &key, me).await? {
        return Ok(found);
    }
    drop(conn);
    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    // Checked again under the write lock: another request may have created it meanwhile.
    if let Some(found) = existing_direct(&mut tx, &key, me).await? {
        return Ok(found);
    }
    let created = create(&mut tx, "direct", "", "", Some(&key), me, &[(me, Role::Member), (other, Role::Member)]).await;
    let row = match created {
        Ok(row) => row,
        // Another replica won the race on the pair's unique key (MySQL; SQLite serialises).
        Err(e) if Database::is_unique_violation(&e) => {
            drop(tx);
            let mut conn = chat.store.db().pool().acquire().await.map_err(internal)?;
            return existing_direct(&mut conn, &key, me).await?.ok_or_else(ServiceError::internal);
        }
        Err(e) => return Err(internal(e)),
    };
    let mine = Store::member(&mut tx, &row.id, me).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    let conversation = view(&mut tx, &row, &mine, true).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(ConversationReply { conversation: Some(conversation), created: true })
}

/// The pair's conversation if it exists and `me` is still in it. One whose other member left
/// (a deleted account) stays theirs; one `me` left is as good as gone.
async fn existing_direct(
    conn: &mut AnyConnection,
    key: &str,
    me: &str,
) -> Result<Option<ConversationReply>, ServiceError> {
    let Some(row) = Store::direct(conn, key).await.map_err(internal)? else { return Ok(None) };
    let Some(mine) = Store::member(conn, &row.id, me).await.map_err(internal)? else {
        return Err(ServiceError::forbidden("conversation", "was left and cannot be reopened"));
    };
    let conversation = view(conn, &row, &mine, true).await.map_err(internal)?;
    Ok(Some(ConversationReply { conversation: Some(conversation), created: false }))
}

pub async fn create_group(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: CreateGroupRequest,
) -> Result<ConversationReply, ServiceError> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    validate::name(&mut v, &req.name);
    validate::description(&mut v, &req.description);
    let others: BTreeSet<&str> = req.member_ids.iter().map(|m| m.trim()).filter(|m| *m != me).collect();
    for id in &others {
        validate::user_id(&mut v, "member_ids", id);
    }
    if others.len() as i64 + 1 > MAX_MEMBERS {
        v.problem("member_ids", &format!("are too many (a group has at most {MAX_MEMBERS} members)"));
    }
    v.finish()?;
    let members: Vec<(&str, Role)> =
        std::iter::once((me, Role::Owner)).chain(others.iter().map(|m| (*m, Role::Member))).collect();

    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let row =
        create(&mut tx, "group", req.name.trim(), &req.description, None, me, &members).await.map_err(internal)?;
    let mine = Store::member(&mut tx, &row.id, me).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    let conversation = view(&mut tx, &row, &mine, true).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(ConversationReply { conversation: Some(conversation), created: true })
}

pub async fn get(chat: Arc<Chat>, ctx: RequestContext, req: GetRequest) -> Result<ConversationReply, ServiceError> {
    let me = ctx.user_id()?;
    let mut conn = chat.store.db().pool().acquire().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut conn, &req.conversation_id, me).await?;
    let conversation = view(&mut conn, &row, &mine, true).await.map_err(internal)?;
    Ok(ConversationReply { conversation: Some(conversation), created: false })
}

pub async fn list(chat: Arc<Chat>, ctx: RequestContext, req: ListRequest) -> Result<ConversationList, ServiceError> {
    let me = ctx.user_id()?;
    let limit = validate::limit(req.limit)?;
    // The cursor is "<last_activity_ms>:<id>" of the previous page's last conversation.
    let after = match req.cursor.as_str() {
        "" => None,
        cursor => Some(
            cursor
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)))
                .ok_or_else(|| ServiceError::invalid("cursor", "is invalid"))?,
        ),
    };
    let mut conn = chat.store.db().pool().acquire().await.map_err(internal)?;
    let mut rows = Store::conversations_of(&mut conn, me, after, limit + 1).await.map_err(internal)?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|(c, _)| format!("{}:{}", c.last_activity_ms, c.id)).unwrap_or_default()
    } else {
        String::new()
    };
    let mut conversations = Vec::with_capacity(rows.len());
    for (row, mine) in &rows {
        conversations.push(view(&mut conn, row, mine, false).await.map_err(internal)?);
    }
    Ok(ConversationList { conversations, next_cursor })
}

pub async fn update(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: UpdateRequest,
) -> Result<ConversationReply, ServiceError> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    if let Some(name) = &req.name {
        validate::name(&mut v, name);
    }
    if let Some(description) = &req.description {
        validate::description(&mut v, description);
    }
    v.finish()?;
    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, Role::Admin)?;
    let name = req.name.as_deref().map(str::trim);
    Store::update_conversation(&mut tx, &row.id, name, req.description.as_deref()).await.map_err(internal)?;
    let seq = Store::next_seq(&mut tx, &row.id).await.map_err(internal)?;
    let after = Store::conversation(&mut tx, &row.id).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    log::record_at(&mut tx, &row.id, seq, me, Event::ConversationUpdated(after.to_proto())).await.map_err(internal)?;
    let conversation = view(&mut tx, &after, &mine, true).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(ConversationReply { conversation: Some(conversation), created: false })
}

pub async fn delete(chat: Arc<Chat>, ctx: RequestContext, req: DeleteRequest) -> Result<Empty, ServiceError> {
    let me = ctx.user_id()?;
    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, Role::Owner)?;
    remove_conversation(&mut tx, &row.id, me).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(Empty {})
}

/// Records the deletion (telling every member) and removes the conversation's contents.
pub async fn remove_conversation(conn: &mut AnyConnection, id: &str, actor: &str) -> sqlx::Result<()> {
    let member_ids = Store::members(conn, id).await?.into_iter().map(|m| m.user_id).collect();
    let event =
        log::append(conn, id, actor, |_| Event::ConversationDeleted(ConversationDeleted { member_ids })).await?;
    Store::delete_conversation(conn, id, event.seq).await
}
