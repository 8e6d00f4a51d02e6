//! Pinned messages: `/api/conversations/{id}/pins*`, answered by the chat worker.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use soulchat_subjects::ServiceError;
use soulchat_subjects::chat::{self, messages as cm};

use super::conversations::path_seq;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{Meta, Path};
use crate::people::Names;
use crate::state::AppState;
use crate::views::chat::{PinEnvelope, PinList, PinView};

#[utoipa::path(get, path = "/conversations/{id}/pins", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation.")),
    responses(
        (status = 200, description = "The pinned messages, newest pin first.", body = PinList),
        (status = 404, description = "No such conversation, or the caller is not a member."),
    ))]
pub async fn list_pins(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
) -> ApiResult<Json<PinList>> {
    let ctx = ctx.with_user(auth.id());
    let list = state.caller.call::<chat::Pins>(&ctx, &cm::PinsRequest { conversation_id: id }).await?;
    let names = Names::of_ids(&state.caller, &ctx, list.pins.iter().flat_map(PinView::user_ids)).await?;
    Ok(Json(PinList { pins: list.pins.into_iter().map(|p| PinView::new(p, &names)).collect() }))
}

/// Idempotent: pinning a pinned message answers with its pin.
#[utoipa::path(post, path = "/conversations/{id}/pins/{seq}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")),
    responses(
        (status = 200, description = "The pin.", body = PinEnvelope),
        (status = 403, description = "In a group, only admins and the owner pin."),
        (status = 404, description = "No such message, or the caller is not a member."),
        (status = 422, description = "The conversation has 50 pinned messages already."),
    ))]
pub async fn pin(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
) -> ApiResult<Json<PinEnvelope>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::PinRequest { conversation_id: id, seq: path_seq(&seq)? };
    let pin = state.caller.call::<chat::Pin>(&ctx, &request).await?.pin.ok_or_else(ServiceError::internal)?;
    let names = Names::of_ids(&state.caller, &ctx, PinView::user_ids(&pin)).await?;
    Ok(Json(PinEnvelope { pin: PinView::new(pin, &names) }))
}

/// Idempotent: unpinning a message that is not pinned changes nothing.
#[utoipa::path(delete, path = "/conversations/{id}/pins/{seq}", tag = "conversations", security(("token" = [])), params(("id" = String, Path, description = "The conversation."), ("seq" = i64, Path, description = "The message's number in its conversation.")),
    responses(
        (status = 204, description = "The message is not pinned (any more)."),
        (status = 403, description = "In a group, only admins and the owner unpin."),
        (status = 404, description = "No such conversation, or the caller is not a member."),
    ))]
pub async fn unpin(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::PinRequest { conversation_id: id, seq: path_seq(&seq)? };
    state.caller.call::<chat::Unpin>(&ctx, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}
