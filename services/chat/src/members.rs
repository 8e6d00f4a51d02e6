//! Group membership: adding, changing roles (ownership transfer included), removing and
//! leaving, and removing a deleted account from everything it belonged to.

use std::sync::Arc;

use soulchat_runtime::RequestContext;
use soulchat_runtime::database::internal;
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::*;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;
use sqlx::AnyConnection;

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
pub async fn contacts(
    chat: Arc<Chat>,
    ctx: RequestContext,
    _req: ContactsRequest,
) -> Result<ContactsReply, ServiceError> {
    const MAX_CONTACTS: i64 = 5000;
    let me = ctx.user_id()?;
    let user_ids = chat.store.contacts(me, MAX_CONTACTS).await.map_err(internal)?;
    Ok(ContactsReply { user_ids })
}

pub async fn add_member(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: AddMemberRequest,
) -> Result<MemberReply, ServiceError> {
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

    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    access::require(&mine, if role == Role::Admin { Role::Owner } else { Role::Admin })?;
    if Store::member(&mut tx, &row.id, user).await.map_err(internal)?.is_some() {
        return Err(ServiceError::new(409, "member", "is already a member"));
    }
    if row.member_count >= MAX_MEMBERS {
        return Err(ServiceError::invalid("members", &format!("are at the maximum ({MAX_MEMBERS})")));
    }
    let seq = Store::next_seq(&mut tx, &row.id).await.map_err(internal)?;
    let member = Store::insert_member(&mut tx, &row.id, user, role.as_str(), seq).await.map_err(internal)?.to_proto();
    log::record_at(&mut tx, &row.id, seq, me, Event::MemberAdded(member.clone())).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(MemberReply { member: Some(member) })
}

pub async fn change_role(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: ChangeRoleRequest,
) -> Result<MemberReply, ServiceError> {
    let me = ctx.user_id()?;
    let role = Role::parse(&req.role).ok_or_else(|| ServiceError::invalid("role", "must be owner, admin or member"))?;

    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    let target =
        Store::member(&mut tx, &row.id, req.user_id.trim()).await.map_err(internal)?.ok_or_else(member_not_found)?;
    let current = Role::of(&target);
    if current == role {
        return Ok(MemberReply { member: Some(target.to_proto()) });
    }
    if role == Role::Owner {
        // Ownership moves: the new owner first, then the old one steps down to admin.
        access::require(&mine, Role::Owner)?;
        set_role(&mut tx, &row.id, me, &target, Role::Owner).await.map_err(internal)?;
        set_role(&mut tx, &row.id, me, &mine, Role::Admin).await.map_err(internal)?;
    } else if current == Role::Owner {
        // Covers the owner too: a group always has one, so it is handed on, never dropped.
        return Err(ServiceError::forbidden("role", "of the owner changes only by transferring ownership"));
    } else {
        access::require(&mine, Role::Admin)?;
        set_role(&mut tx, &row.id, me, &target, role).await.map_err(internal)?;
    }
    let after =
        Store::member(&mut tx, &row.id, &target.user_id).await.map_err(internal)?.ok_or_else(ServiceError::internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(MemberReply { member: Some(after.to_proto()) })
}

async fn set_role(
    conn: &mut AnyConnection,
    conversation_id: &str,
    actor: &str,
    member: &MemberRow,
    role: Role,
) -> sqlx::Result<()> {
    Store::set_role(conn, conversation_id, &member.user_id, role.as_str()).await?;
    let changed = Member { role: role.as_str().to_owned(), ..member.to_proto() };
    log::append(conn, conversation_id, actor, |_| Event::RoleChanged(changed)).await?;
    Ok(())
}

pub async fn remove_member(
    chat: Arc<Chat>,
    ctx: RequestContext,
    req: RemoveMemberRequest,
) -> Result<Empty, ServiceError> {
    let me = ctx.user_id()?;
    let user = req.user_id.trim();
    let mut tx = chat.store.db().begin().await.map_err(internal)?;
    let (row, mine) = access::membership(&mut tx, &req.conversation_id, me).await?;
    access::require_group(&row)?;
    if user == me {
        if Role::of(&mine) == Role::Owner {
            return Err(ServiceError::forbidden(
                "conversation",
                "cannot be left by its owner: transfer ownership first",
            ));
        }
    } else {
        access::require(&mine, Role::Admin)?;
        let target = Store::member(&mut tx, &row.id, user).await.map_err(internal)?.ok_or_else(member_not_found)?;
        if Role::of(&target) >= Role::of(&mine) {
            return Err(ServiceError::forbidden("member", "has a role as high as yours"));
        }
    }
    remove(&mut tx, &row.id, user, me).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    chat.relay.wake();
    Ok(Empty {})
}

async fn remove(conn: &mut AnyConnection, conversation_id: &str, user: &str, actor: &str) -> sqlx::Result<()> {
    Store::delete_member(conn, conversation_id, user).await?;
    let removed = MemberRemoved { user_id: user.to_owned() };
    log::append(conn, conversation_id, actor, |_| Event::MemberRemoved(removed)).await?;
    Ok(())
}

/// Takes a deleted account out of every conversation: an owner's group passes to its oldest
/// admin, else its oldest member; a conversation left empty is deleted. Answers whether any
/// event was recorded.
pub async fn remove_everywhere(conn: &mut AnyConnection, user: &str) -> sqlx::Result<bool> {
    let memberships = Store::memberships(conn, user).await?;
    for (conversation_id, membership) in &memberships {
        let members = Store::members(conn, conversation_id).await?;
        let others: Vec<&MemberRow> = members.iter().filter(|m| m.user_id != user).collect();
        if others.is_empty() {
            remove_conversation(conn, conversation_id, "").await?;
            continue;
        }
        if Role::of(membership) == Role::Owner {
            let heir = others.iter().find(|m| Role::of(m) == Role::Admin).unwrap_or(&others[0]);
            set_role(conn, conversation_id, "", heir, Role::Owner).await?;
        }
        remove(conn, conversation_id, user, "").await?;
    }
    Ok(!memberships.is_empty())
}
