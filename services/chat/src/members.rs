//! Group membership: adding, changing roles (ownership transfer included), removing and
//! leaving, and removing a deleted account from everything it belonged to.

use std::sync::Arc;

use anyhow::Context as _;
use soulchat_runtime::{RequestContext, Result, WriteTx};
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;

use crate::Chat;
use crate::access::{self, Role};
use crate::conversations::remove_conversation;
use crate::log;
use crate::store::{MemberRow, Store};
use crate::validate::{self, MAX_MEMBERS};

fn member_not_found() -> ServiceError {
    ServiceError::not_found("member")
}

/// Whom the caller's presence concerns. Capped: presence is a courtesy, not a guarantee.
pub async fn contacts(chat: Arc<Chat>, ctx: RequestContext, _req: ContactsRequest) -> Result<ContactsReply> {
    const MAX_CONTACTS: i64 = 5000;
    let me = ctx.user_id()?;
    let user_ids = Store::contacts(&mut chat.store.db().reads().await?, me, MAX_CONTACTS).await?;
    Ok(ContactsReply { user_ids })
}

pub async fn add_member(chat: Arc<Chat>, ctx: RequestContext, req: AddMemberRequest) -> Result<MemberReply> {
    let me = ctx.user_id()?;
    let mut v = Validation::new();
    validate::user_id(&mut v, "user_id", req.user_id.trim());
    let role = match req.role.as_deref() {
        None | Some("") => Role::Member,
        Some(role) => match Role::parse(role) {
            Some(role @ (Role::Member | Role::Admin)) => role,
            _ => {
                v.problem("role", "must be admin or member");
                Role::Member
            }
        },
    };
    v.finish()?;
    let user = req.user_id.trim();

    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, if role == Role::Admin { Role::Owner } else { Role::Admin })?;
    if Store::member(&mut tx, &row.id, user).await?.is_some() {
        return Err(ServiceError::conflict("member", "is already a member").into());
    }
    if row.member_count >= MAX_MEMBERS {
        return Err(ServiceError::invalid("members", &format!("are at the maximum ({MAX_MEMBERS})")).into());
    }
    let seq = Store::next_seq(&mut tx, &row.id).await?;
    let member = Store::insert_member(&mut tx, &row.id, user, role.as_str(), seq).await?.to_proto();
    log::record_at(&chat.store, &mut tx, &row.id, seq, me, Event::MemberAdded(member.clone())).await?;
    tx.commit().await?;
    Ok(MemberReply { member: Some(member) })
}

pub async fn change_role(chat: Arc<Chat>, ctx: RequestContext, req: ChangeRoleRequest) -> Result<MemberReply> {
    let me = ctx.user_id()?;
    let role = Role::parse(&req.role).ok_or_else(|| ServiceError::invalid("role", "must be owner, admin or member"))?;

    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    let target = Store::member(&mut tx, &row.id, req.user_id.trim()).await?.ok_or_else(member_not_found)?;
    let current = Role::of(&target);
    if current == role {
        return Ok(MemberReply { member: Some(target.to_proto()) });
    }
    if role == Role::Owner {
        // Ownership moves: the new owner first, then the old one steps down to admin.
        access::require(&mine, Role::Owner)?;
        set_role(&chat.store, &mut tx, &row.id, me, &target, Role::Owner).await?;
        set_role(&chat.store, &mut tx, &row.id, me, &mine, Role::Admin).await?;
    } else if current == Role::Owner {
        // Covers the owner too: a group always has one, so it is handed on, never dropped.
        return Err(ServiceError::forbidden("role", "of the owner changes only by transferring ownership").into());
    } else {
        access::require(&mine, Role::Admin)?;
        set_role(&chat.store, &mut tx, &row.id, me, &target, role).await?;
    }
    let after = Store::member(&mut tx, &row.id, &target.user_id).await?.context("the member is not there any more")?;
    tx.commit().await?;
    Ok(MemberReply { member: Some(after.to_proto()) })
}

async fn set_role(
    store: &Store,
    tx: &mut WriteTx<'_>,
    conversation_id: &str,
    actor: &str,
    member: &MemberRow,
    role: Role,
) -> sqlx::Result<()> {
    Store::set_role(tx, conversation_id, &member.user_id, role.as_str()).await?;
    let changed = Member { role: role.as_str().to_owned(), ..member.to_proto() };
    log::append(store, tx, conversation_id, actor, |_| Event::RoleChanged(changed)).await?;
    Ok(())
}

pub async fn remove_member(chat: Arc<Chat>, ctx: RequestContext, req: RemoveMemberRequest) -> Result<Empty> {
    let me = ctx.user_id()?;
    let user = req.user_id.trim();
    let mut tx = chat.store.db().begin().await?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    if user == me {
        if Role::of(&mine) == Role::Owner {
            let refusal =
                ServiceError::forbidden("conversation", "cannot be left by its owner: transfer ownership first");
            return Err(refusal.into());
        }
    } else {
        access::require(&mine, Role::Admin)?;
        let target = Store::member(&mut tx, &row.id, user).await?.ok_or_else(member_not_found)?;
        if Role::of(&target) >= Role::of(&mine) {
            return Err(ServiceError::forbidden("member", "has a role as high as yours").into());
        }
    }
    remove(&chat.store, &mut tx, &row.id, user, me).await?;
    tx.commit().await?;
    Ok(Empty {})
}

async fn remove(
    store: &Store,
    tx: &mut WriteTx<'_>,
    conversation_id: &str,
    user: &str,
    actor: &str,
) -> sqlx::Result<()> {
    Store::delete_member(tx, conversation_id, user).await?;
    let removed = MemberRemoved { user_id: user.to_owned() };
    log::append(store, tx, conversation_id, actor, |_| Event::MemberRemoved(removed)).await?;
    Ok(())
}

/// Takes a deleted account out of every conversation: an owner's group passes to its oldest
/// admin, else its oldest member; a conversation left empty is deleted.
pub async fn remove_everywhere(store: &Store, tx: &mut WriteTx<'_>, user: &str) -> sqlx::Result<()> {
    Store::remove_blocks_of(tx, user).await?;
    let memberships = Store::memberships(tx, user).await?;
    for (conversation_id, membership) in &memberships {
        let members = Store::members(tx, conversation_id).await?;
        let others: Vec<&MemberRow> = members.iter().filter(|m| m.user_id != user).collect();
        if others.is_empty() {
            remove_conversation(store, tx, conversation_id, "").await?;
            continue;
        }
        if Role::of(membership) == Role::Owner {
            let heir = others.iter().find(|m| Role::of(m) == Role::Admin).unwrap_or(&others[0]);
            set_role(store, tx, conversation_id, "", heir, Role::Owner).await?;
        }
        remove(store, tx, conversation_id, user, "").await?;
    }
    Ok(())
}
