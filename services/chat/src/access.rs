//! Who may do what in a conversation. A caller who is not a member learns nothing (404, as if
//! the conversation did not exist); a member without the needed role gets 403.

use soulchat_runtime::Reads;
use soulchat_subjects::ServiceError;

use crate::store::{ConversationRow, MemberRow, Store};

/// Roles, lowest first, so `>=` reads as "at least".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(role: &str) -> Option<Role> {
        match role {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// A stored role; anything unknown counts as the least privileged.
    pub fn of(member: &MemberRow) -> Role {
        Role::parse(&member.role).unwrap_or(Role::Member)
    }
}

pub fn not_found() -> ServiceError {
    ServiceError::not_found("conversation")
}

/// A direct conversation (or one to be opened) with someone who blocks the caller.
pub fn blocked() -> ServiceError {
    ServiceError::forbidden("conversation", "is blocked")
}

/// 403 if `blocker` blocks `user` (the chat worker's copy of the profile worker's blocks).
pub async fn refuse_blocked(r: &mut impl Reads, blocker: &str, user: &str) -> soulchat_runtime::Result<()> {
    if Store::blocks(r, blocker, user).await? {
        return Err(blocked().into());
    }
    Ok(())
}

/// The conversation and the caller's membership, or 404.
pub async fn membership(
    r: &mut impl Reads,
    conversation_id: &str,
    user_id: &str,
) -> soulchat_runtime::Result<(ConversationRow, MemberRow)> {
    let member = Store::member(r, conversation_id, user_id).await?.ok_or_else(not_found)?;
    let conversation = Store::conversation(r, conversation_id).await?.ok_or_else(not_found)?;
    Ok((conversation, member))
}

/// 403 unless `member` holds at least `needed`.
pub fn require(member: &MemberRow, needed: Role) -> Result<(), ServiceError> {
    if Role::of(member) >= needed {
        Ok(())
    } else {
        Err(ServiceError::forbidden("conversation", &format!("requires the {} role", needed.as_str())))
    }
}

/// Member management is for groups only; a direct conversation's pair is fixed.
pub fn require_group(conversation: &ConversationRow) -> Result<(), ServiceError> {
    if conversation.is_group() {
        Ok(())
    } else {
        Err(ServiceError::forbidden("conversation", "is a direct conversation"))
    }
}
