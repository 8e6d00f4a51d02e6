//! Conversation operations: direct conversations (one per pair), groups, and the caller's list.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use soulchat_runtime::{Database, Reads, RequestContext, Result, WriteTx};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;

use crate::Chat;
use crate::access::{self, Role};
use crate::log;
use crate::store::{ConversationRow, MemberRow, MessageRow, Store};
use crate::validate::{self, MAX_MEMBERS};

/// The conversation as `me` sees it: role, read position, unread count, last message, and the
/// members when asked.
pub async fn view(
    r: &mut impl Reads,
    c: &ConversationRow,
    me: &MemberRow,
    with_members: bool,
) -> sqlx::Result<Conversation> {
    let mut out = views(r, &[(c, me)]).await?.pop().expect("one view per row");
    if with_members {
        out.members = Store::members(r, &c.id).await?.iter().map(MemberRow::to_proto).collect();
    }
    Ok(out)
}

/// [`view`] of each conversation without members, in five statements whatever their number
/// (unread counts, last messages in two, their reactions, their threads).
async fn views(r: &mut impl Reads, rows: &[(&ConversationRow, &MemberRow)]) -> sqlx::Result<Vec<Conversation>> {
    let Some((_, me)) = rows.first() else { return Ok(Vec::new()) };
    let reads: Vec<(&str, i64)> = rows.iter().map(|(c, m)| (c.id.as_str(), m.read_seq)).collect();
    let unread = Store::unread_counts(r, &me.user_id, &reads).await?;
    let ids: Vec<&str> = reads.iter().map(|(id, _)| *id).collect();
    let mut last: Vec<Message> = Store::last_messages(r, &ids).await?.iter().map(MessageRow::to_proto).collect();
    Store::attach(r, Some(&me.user_id), &mut last).await?;
    let mut last: HashMap<String, Message> = last.into_iter().map(|m| (m.conversation_id.clone(), m)).collect();
    Ok(rows
        .iter()
        .map(|(c, mine)| {
            let mut out = c.to_proto();
            out.my_role = mine.role.clone();
            out.read_seq = mine.read_seq;
            out.unread_count = unread.get(&c.id).copied().unwrap_or(0);
            out.last_message = last.remove(&c.id);
            out
        })
        .collect())
}

/// Creates a conversation with its members, all joining at its creation event (seq 1): the
/// direct conversation of the pair `direct_key` names, or else a group.
async fn create(
    store: &Store,
    tx: &mut WriteTx<'_>,
    name: &str,
    description: &str,
    direct_key: Option<&str>,
    creator: &str,
    members: &[(&str, Role)],
) -> sqlx::Result<ConversationRow> {
    let id = uuid::Uuid::now_v7().to_string();
    let kind = if direct_key.is_some() { "direct" } else { "group" };
    Store::insert_conversation(tx, &id, kind, name, description, direct_key).await?;
    let seq = Store::next_seq(tx, &id).await?;
    for (user, role) in members {
        Store::insert_member(tx, &id, user, role.as_str(), seq).await?;
    }
    let row = Store::conversation(tx, &id).await?.ok_or(sqlx::Error::RowNotFound)?;
    let mut created = row.to_proto();
    created.members = Store::members(tx, &id).await?.iter().map(MemberRow::to_proto).collect();
    log::record_at(store, tx, &id, seq, creator, Event::ConversationCreated(created)).await?;
    Ok(row)
}

pub async fn open_direct(chat: Arc<Chat>, ctx: RequestContext, req: OpenDirectRequest) -> Result<ConversationReply> {
    let me = ctx.user_id()?;
    let other = req.user_id.trim();
    let mut v = Validation::new();
    validate::user_id(&mut v, "user_id", other);
    if other == me {
        v.problem("user_id", "cannot be yourself");
    }
    v.finish()?;
    let key = if me < other { format!("{me}:{other}") } else { format!("{other}:{me}") };

    let db = chat.store.db();
    let mut conn = db.reads().await?;
    access::refuse_blocked(&mut conn, other, me).await?;
    if let Some(found) = existing_direct(&mut conn, &key, me).await? {
        return Ok(found);
    }
    drop(conn);
    let mut tx = db.begin().await?;
    // Checked again under the write lock: another request may have created it meanwhile.
    if let Some(found) = existing_direct(&mut tx, &key, me).await? {
        return Ok(found);
    }
    let members = [(me, Role::Member), (other, Role::Member)];
    let created = create(&chat.store, &mut tx, "", "", Some(&key), me, &members).await;
    let row = match created {
        Ok(row) => row,
        // Another replica won the race on the pair's unique key (MySQL; SQLite serialises).
        Err(e) if Database::is_unique_violation(&e) => {
            drop(tx);
            let mut conn = db.reads().await?;
            let found = existing_direct(&mut conn, &key, me).await?;
            return Ok(found.context("a direct conversation's unique key was taken, but it is not there")?);
        }
        Err(e) => return Err(e.into()),
    };
    let mine = Store::member(&mut tx, &row.id, me).await?.context("the creator is not a member")?;
    let conversation = view(&mut tx, &row, &mine, true).await?;
    tx.commit().await?;
    Ok(ConversationReply { conversation: Some(conversation), created: true })
}

/// The pair's conversation if it exists and `me` is still in it. One whose other member left
/// (a deleted account) stays theirs; one `me` left is as good as gone.
async fn existing_direct(r: &mut impl Reads, key: &str, me: &str) -> Result<Option<ConversationReply>> {
    let Some(row) = Store::direct(r, key).await? else { return Ok(None) };
    let Some(mine) = Store::member(r, &row.id, me).await? else {
        return Err(ServiceError::forbidden("conversation", "was left and cannot be reopened").into());
    };
    let conversation = view(r, &row, &mine, true).await?;
    Ok(Some(ConversationReply { conversation: Some(conversation), created: false }))
}

pub async fn create_group(chat: Arc<Chat>, ctx: RequestContext, req: CreateGroupRequest) -> Result<ConversationReply> {
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

    let mut tx = chat.store.db().begin().await?;
    let row = create(&chat.store, &mut tx, req.name.trim(), &req.description, None, me, &members).await?;
    let mine = Store::member(&mut tx, &row.id, me).await?.context("the creator is not a member")?;
    let conversation = view(&mut tx, &row, &mine, true).await?;
    tx.commit().await?;
    Ok(ConversationReply { conversation: Some(conversation), created: true })
}

pub async fn get(chat: Arc<Chat>, ctx: RequestContext, req: GetRequest) -> Result<ConversationReply> {
    let me = ctx.user_id()?;
    let mut conn = chat.store.db().reads().await?;
    let (row, mine) = access::membership(&mut conn, &req.conversation_id, me).await?;
    let conversation = view(&mut conn, &row, &mine, true).await?;
    Ok(ConversationReply { conversation: Some(conversation), created: false })
}

pub async fn list(chat: Arc<Chat>, ctx: RequestContext, req: ListRequest) -> Result<ConversationList> {
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
    let mut conn = chat.store.db().reads().await?;
    let mut rows = Store::conversations_of(&mut conn, me, after, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|(c, _)| format!("{}:{}", c.last_activity_ms, c.id)).unwrap_or_default()
    } else {
        String::new()
    };
    let rows: Vec<_> = rows.iter().map(|(c, mine)| (c, mine)).collect();
    let conversations = views(&mut conn, &rows).await?;
    Ok(ConversationList { conversations, next_cursor })
}

pub async fn update(chat: Arc<Chat>, ctx: RequestContext, req: UpdateRequest) -> Result<ConversationReply> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    if let Some(name) = &req.name {
        validate::name(&mut v, name);
    }
    if let Some(description) = &req.description {
        validate::description(&mut v, description);
    }
    v.finish()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, Role::Admin)?;
    let name = req.name.as_deref().map(str::trim);
    Store::update_conversation(&mut tx, &row.id, name, req.description.as_deref()).await?;
    let seq = Store::next_seq(&mut tx, &row.id).await?;
    let after = Store::conversation(&mut tx, &row.id).await?.context("the updated conversation is not there")?;
    log::record_at(&chat.store, &mut tx, &row.id, seq, me, Event::ConversationUpdated(after.to_proto())).await?;
    let conversation = view(&mut tx, &after, &mine, true).await?;
    tx.commit().await?;
    Ok(ConversationReply { conversation: Some(conversation), created: false })
}

pub async fn delete(chat: Arc<Chat>, ctx: RequestContext, req: DeleteRequest) -> Result<Empty> {
    let me = ctx.user_id()?;
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, Role::Owner)?;
    remove_conversation(&chat.store, &mut tx, &row.id, me).await?;
    tx.commit().await?;
    Ok(Empty {})
}

/// Records the deletion (telling every member) and removes the conversation's contents.
pub async fn remove_conversation(store: &Store, tx: &mut WriteTx<'_>, id: &str, actor: &str) -> sqlx::Result<()> {
    let member_ids = Store::members(tx, id).await?.into_iter().map(|m| m.user_id).collect();
    let deleted = |_| Event::ConversationDeleted(ConversationDeleted { member_ids });
    let event = log::append(store, tx, id, actor, deleted).await?;
    Store::delete_conversation(tx, id, event.seq).await
}
