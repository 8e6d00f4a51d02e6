//! Threads: `/api/conversations/{id}/messages/{seq}/thread`, a root message's replies (sent
//! with `thread_root`), paged as history.

use axum::Json;
use axum::extract::State;
use soulchat_subjects::chat::{self, messages as cm};

use super::conversations::{messages, page_seq, path_seq};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{Meta, Paging, Path};
use crate::state::AppState;
use crate::views::chat::MessageList;

#[utoipa::path(get, path = "/conversations/{id}/messages/{seq}/thread", tag = "conversations", security(("token" = [])),
    params(("id" = String, Path, description = "The conversation."),
        ("seq" = i64, Path, description = "The thread's root message."),
        ("before" = Option<i64>, Query, description = "Replies before this seq (the next page up)."),
        ("after" = Option<i64>, Query, description = "Replies after this seq."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses(
        (status = 200, description = "The thread's replies, oldest first; `next_cursor` is the `before` of the page above.", body = MessageList),
        (status = 404, description = "No such message, or the caller is not a member."),
    ))]
pub async fn thread(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path((id, seq)): Path<(String, String)>,
    paging: Paging,
) -> ApiResult<Json<MessageList>> {
    let ctx = ctx.with_user(auth.id());
    let (before, after) = (page_seq(&paging, "before")?, page_seq(&paging, "after")?);
    let request = cm::ThreadRequest { conversation_id: id, root: path_seq(&seq)?, before, after, limit: paging.limit };
    let list = state.caller.call::<chat::Thread>(&ctx, &request).await?;
    Ok(Json(messages(&state, &ctx, list).await?))
}
