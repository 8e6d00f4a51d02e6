//! Reactions to messages: `/api/conversations/{id}/messages/{seq}/reactions*`, answered by the
//! chat worker with the message as the caller now sees it.

use axum::Json;
use axum::extract::State;
use soulchat_subjects::chat::{self, messages as cm};

use super::conversations::{message, path_seq};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta, Path};
use crate::state::AppState;
use crate::views::chat::{MessageEnvelope, ReactionBody};

/// Idempotent: reacting twice with the same emoji is once.
#[utoipa::path(post, path = "/conversations/{id}/messages/{seq}/reactions", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")), request_body = ReactionBody,
    responses(
        (status = 200, description = "The message with its reactions.", body = MessageEnvelope),
        (status = 404, description = "No such message, or the caller is not a member."),
        (status = 422, description = "Not one emoji, or one too many distinct emoji on the message (at most 20)."),
    ))]
pub async fn add_reaction(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
    JsonBody(body): JsonBody<ReactionBody>,
) -> ApiResult<Json<MessageEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::ReactionRequest { conversation_id: id, seq: path_seq(&seq)?, emoji: body.emoji };
    let reply = state.caller.call::<chat::AddReaction>(&ctx, &request).await?;
    Ok(Json(message(&state, &ctx, reply).await?))
}

/// Idempotent: removing a reaction the caller did not make changes nothing.
#[utoipa::path(delete, path = "/conversations/{id}/messages/{seq}/reactions/{emoji}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation."), ("emoji" = String, Path, description = "The emoji, percent-encoded.")),
    responses(
        (status = 200, description = "The message with its reactions.", body = MessageEnvelope),
        (status = 404, description = "No such message, or the caller is not a member."),
        (status = 422, description = "Not one emoji."),
    ))]
pub async fn remove_reaction(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq, emoji)): Path<(String, String, String)>,
) -> ApiResult<Json<MessageEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::ReactionRequest { conversation_id: id, seq: path_seq(&seq)?, emoji };
    let reply = state.caller.call::<chat::RemoveReaction>(&ctx, &request).await?;
    Ok(Json(message(&state, &ctx, reply).await?))
}
