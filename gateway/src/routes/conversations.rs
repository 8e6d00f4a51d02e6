//! Conversations, members and messages: `/api/conversations*`, answered by the chat worker.
//! Clients name people by username; the chat worker knows ids: [`crate::people`] translates.
//! Sending and marking read are [`crate::chat`] calls, shared with the WebSocket sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::{CallContext, ServiceError};

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta, Paging, Path};
use crate::people::{self, Names};
use crate::state::AppState;
use crate::views::chat::*;

#[utoipa::path(post, path = "/conversations/direct", tag = "conversations", security(("token" = [])), request_body = DirectBody,
    responses(
        (status = 200, description = "The existing direct conversation with that user.", body = ConversationEnvelope),
        (status = 201, description = "A new direct conversation.", body = ConversationEnvelope),
        (status = 403, description = "The caller left it and cannot reopen it."),
        (status = 404, description = "No such user."),
    ))]
pub async fn open_direct(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<DirectBody>,
) -> ApiResult<(StatusCode, Json<ConversationEnvelope>)> {
    let ctx = ctx.with_user(auth.id());
    let user_id = one_id(&state, &ctx, &body.username).await?;
    let reply = state.caller.call::<chat::OpenDirect>(&ctx, &cm::OpenDirectRequest { user_id }).await?;
    let status = if reply.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(conversation(&state, &ctx, reply).await?)))
}

#[utoipa::path(post, path = "/conversations", tag = "conversations", security(("token" = [])), request_body = GroupBody,
    responses(
        (status = 201, description = "The new group; the caller owns it.", body = ConversationEnvelope),
        (status = 404, description = "A member named does not exist."),
    ))]
pub async fn create_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<GroupBody>,
) -> ApiResult<(StatusCode, Json<ConversationEnvelope>)> {
    let ctx = ctx.with_user(auth.id());
    let member_ids = people::ids_of(&state.caller, &ctx, "members", &body.members).await?;
    let request = cm::CreateGroupRequest { name: body.name, description: body.description, member_ids };
    let reply = state.caller.call::<chat::CreateGroup>(&ctx, &request).await?;
    Ok((StatusCode::CREATED, Json(conversation(&state, &ctx, reply).await?)))
}

#[utoipa::path(get, path = "/conversations", tag = "conversations", security(("token" = [])), params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses((status = 200, description = "The caller's conversations, latest activity first.", body = ConversationList)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<ConversationList>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::ListRequest { cursor: paging.cursor, limit: paging.limit };
    let list = state.caller.call::<chat::List>(&ctx, &request).await?;
    let names =
        Names::of_ids(&state.caller, &ctx, list.conversations.iter().flat_map(ConversationView::user_ids)).await?;
    Ok(Json(ConversationList {
        conversations: list.conversations.into_iter().map(|c| ConversationView::new(c, &names)).collect(),
        next_cursor: Some(list.next_cursor).filter(|c| !c.is_empty()),
    }))
}

#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")),
    responses((status = 200, description = "The conversation and its members.", body = ConversationEnvelope), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let reply = state.caller.call::<chat::Get>(&ctx, &cm::GetRequest { conversation_id: id }).await?;
    Ok(Json(conversation(&state, &ctx, reply).await?))
}

#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")), request_body = ConversationChanges,
    responses((status = 200, description = "The renamed or redescribed group.", body = ConversationEnvelope), (status = 403, description = "The caller's role does not allow it."), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ConversationChanges>,
) -> ApiResult<Json<ConversationEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::UpdateRequest { conversation_id: id, name: body.name, description: body.description };
    let reply = state.caller.call::<chat::Update>(&ctx, &request).await?;
    Ok(Json(conversation(&state, &ctx, reply).await?))
}

#[utoipa::path(delete, path = "/conversations/{id}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")),
    responses((status = 204, description = "The group is deleted (owners only)."), (status = 403, description = "The caller's role does not allow it."), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = ctx.with_user(auth.id());
    state.caller.call::<chat::Delete>(&ctx, &cm::DeleteRequest { conversation_id: id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/conversations/{id}/members", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")), request_body = AddMemberBody,
    responses(
        (status = 201, description = "The new member.", body = MemberEnvelope),
        (status = 403, description = "The caller's role does not allow it."), (status = 404, description = "No such conversation, or the caller is not a member."),
        (status = 409, description = "Already a member."),
    ))]
pub async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddMemberBody>,
) -> ApiResult<(StatusCode, Json<MemberEnvelope>)> {
    let ctx = ctx.with_user(auth.id());
    let user_id = one_id(&state, &ctx, &body.username).await?;
    let request = cm::AddMemberRequest { conversation_id: id, user_id, role: body.role };
    let reply = state.caller.call::<chat::AddMember>(&ctx, &request).await?;
    Ok((StatusCode::CREATED, Json(member(&state, &ctx, reply).await?)))
}

#[utoipa::path(patch, path = "/conversations/{id}/members/{username}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("username" = String, Path, description = "The member.")), request_body = RoleBody,
    responses((status = 200, description = "The member with the new role.", body = MemberEnvelope), (status = 403, description = "The caller's role does not allow it."), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn change_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, username)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Json<MemberEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let user_id = one_id(&state, &ctx, &username).await?;
    let request = cm::ChangeRoleRequest { conversation_id: id, user_id, role: body.role };
    let reply = state.caller.call::<chat::ChangeRole>(&ctx, &request).await?;
    Ok(Json(member(&state, &ctx, reply).await?))
}

/// Removes a member, or leaves when the name is the caller's own.
#[utoipa::path(delete, path = "/conversations/{id}/members/{username}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("username" = String, Path, description = "The member.")),
    responses((status = 204, description = "Removed (or left, when it is the caller)."), (status = 403, description = "The caller's role does not allow it."), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ctx = ctx.with_user(auth.id());
    let user_id = one_id(&state, &ctx, &username).await?;
    let request = cm::RemoveMemberRequest { conversation_id: id, user_id };
    state.caller.call::<chat::RemoveMember>(&ctx, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations", security(("token" = [])),
    params(("id" = String, Path, description = "The conversation."),
        ("before" = Option<i64>, Query, description = "Messages before this seq (the next page up)."),
        ("after" = Option<i64>, Query, description = "Messages after this seq."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses((status = 200, description = "Messages, oldest first; `next_cursor` is the `before` of the page above.", body = MessageList), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    paging: Paging,
) -> ApiResult<Json<MessageList>> {
    let ctx = ctx.with_user(auth.id());
    let (before, after) = (page_seq(&paging, "before")?, page_seq(&paging, "after")?);
    let request = cm::HistoryRequest { conversation_id: id, before, after, limit: paging.limit };
    let list = state.caller.call::<chat::History>(&ctx, &request).await?;
    Ok(Json(messages(&state, &ctx, list).await?))
}

/// A `before` or `after` query parameter.
pub(super) fn page_seq(paging: &Paging, name: &str) -> Result<Option<i64>, ServiceError> {
    paging
        .param(name)
        .map(|v| v.trim().parse::<i64>().map_err(|_| ServiceError::invalid(name, "must be a message seq")))
        .transpose()
}

pub(super) async fn messages(
    state: &AppState,
    ctx: &CallContext,
    list: cm::MessageList,
) -> Result<MessageList, ServiceError> {
    let names = Names::of_ids(&state.caller, ctx, list.messages.iter().flat_map(MessageView::user_ids)).await?;
    Ok(MessageList {
        messages: list.messages.into_iter().map(|m| MessageView::new(m, &names)).collect(),
        next_cursor: list.next_cursor,
    })
}

/// 201 for a new message, 200 for a retry of one already stored (same `client_id`).
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")), request_body = SendBody,
    responses(
        (status = 200, description = "A retry: the message already stored under this `client_id`.", body = MessageEnvelope),
        (status = 201, description = "The stored message.", body = MessageEnvelope),
        (status = 403, description = "The caller may not send here."),
        (status = 404, description = "No such conversation, or the caller is not a member."),
        (status = 409, description = "The `client_id` is already the caller's for a message in another conversation."),
    ))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SendBody>,
) -> ApiResult<(StatusCode, Json<MessageEnvelope>)> {
    let ctx = ctx.with_user(auth.id());
    let reply = state.chat.send(auth.id(), &ctx, id, body).await?;
    let status = if reply.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(message(&state, &ctx, reply).await?)))
}

#[utoipa::path(patch, path = "/conversations/{id}/messages/{seq}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")), request_body = EditBody,
    responses(
        (status = 200, description = "The edited message.", body = MessageEnvelope),
        (status = 403, description = "Only its sender edits a message."),
        (status = 404, description = "No such message, or the caller is not a member."),
    ))]
pub async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
    JsonBody(body): JsonBody<EditBody>,
) -> ApiResult<Json<MessageEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let mention_ids = people::mentioned(&state.caller, &ctx, &body.content).await?;
    let request = cm::EditRequest { conversation_id: id, seq: path_seq(&seq)?, content: body.content, mention_ids };
    let reply = state.caller.call::<chat::Edit>(&ctx, &request).await?;
    Ok(Json(message(&state, &ctx, reply).await?))
}

#[utoipa::path(delete, path = "/conversations/{id}/messages/{seq}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")),
    responses(
        (status = 204, description = "The message is deleted (its sender, or a group admin)."),
        (status = 403, description = "The caller may not delete it."),
        (status = 404, description = "No such message, or the caller is not a member."),
    ))]
pub async fn delete_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::DeleteMessageRequest { conversation_id: id, seq: path_seq(&seq)? };
    state.caller.call::<chat::DeleteMessage>(&ctx, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A read receipt; the members' sockets hear of it.
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")), request_body = ReadBody,
    responses((status = 204, description = "The caller has read up to `seq`; members' sockets hear of it."), (status = 404, description = "No such conversation, or the caller is not a member.")))]
pub async fn mark_read(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReadBody>,
) -> ApiResult<StatusCode> {
    state.chat.mark_read(&ctx.with_user(auth.id()), id, body.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn path_seq(seq: &str) -> Result<i64, ServiceError> {
    seq.parse::<i64>().map_err(|_| ServiceError::not_found("message"))
}

async fn one_id(state: &AppState, ctx: &CallContext, username: &str) -> Result<String, ServiceError> {
    if username.trim().is_empty() {
        return Err(ServiceError::invalid("username", "can't be blank"));
    }
    let ids = people::ids_of(&state.caller, ctx, "user", &[username.to_owned()]).await?;
    ids.into_iter().next().ok_or_else(|| ServiceError::not_found("user"))
}

async fn conversation(
    state: &AppState,
    ctx: &CallContext,
    reply: cm::ConversationReply,
) -> Result<ConversationEnvelope, ServiceError> {
    let c = reply.conversation.ok_or_else(ServiceError::internal)?;
    let names = Names::of_ids(&state.caller, ctx, ConversationView::user_ids(&c)).await?;
    Ok(ConversationEnvelope { conversation: ConversationView::new(c, &names) })
}

async fn member(state: &AppState, ctx: &CallContext, reply: cm::MemberReply) -> Result<MemberEnvelope, ServiceError> {
    let m = reply.member.ok_or_else(ServiceError::internal)?;
    let names = Names::of_ids(&state.caller, ctx, [m.user_id.as_str()]).await?;
    Ok(MemberEnvelope { member: MemberView::new(m, &names) })
}

pub(super) async fn message(
    state: &AppState,
    ctx: &CallContext,
    reply: cm::MessageReply,
) -> Result<MessageEnvelope, ServiceError> {
    let m = reply.message.ok_or_else(ServiceError::internal)?;
    let names = Names::of_ids(&state.caller, ctx, MessageView::user_ids(&m)).await?;
    Ok(MessageEnvelope { message: MessageView::new(m, &names) })
}
