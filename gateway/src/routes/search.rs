//! Search: `/api/search/*`, answered by the worker that owns what is searched.

use axum::Json;
use axum::extract::State;
use soulchat_subjects::chat::{self, messages as cm};

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{Meta, Paging};
use crate::people::Names;
use crate::state::AppState;
use crate::views::chat::{MessageView, SearchResults};

/// Full-text search of the messages in the caller's conversations, best match first.
#[utoipa::path(get, path = "/search/messages", tag = "conversations", security(("token" = [])),
    params(
        ("q" = String, Query, description = "Up to 200 characters; its words of 3 or more letters or digits are searched for, each as a word prefix, all in one message, case and accents ignored."),
        ("conversation_id" = Option<String>, Query, description = "Only this conversation."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses(
        (status = 200, description = "Matching messages, best match first (results go 1,000 deep).", body = SearchResults),
        (status = 404, description = "`conversation_id` names no conversation of the caller's."),
        (status = 422, description = "No word to search for, or a bad `cursor` or `limit`."),
    ))]
pub async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<SearchResults>> {
    let ctx = ctx.with_user(auth.id());
    let request = cm::SearchRequest {
        q: paging.param("q").unwrap_or_default(),
        conversation_id: paging.param("conversation_id"),
        cursor: paging.cursor.clone(),
        limit: paging.limit,
    };
    let found = state.caller.call::<chat::Search>(&ctx, &request).await?;
    let names = Names::of_ids(&state.caller, &ctx, found.messages.iter().flat_map(MessageView::user_ids)).await?;
    Ok(Json(SearchResults {
        messages: found.messages.into_iter().map(|m| MessageView::new(m, &names)).collect(),
        next_cursor: Some(found.next_cursor).filter(|c| !c.is_empty()),
    }))
}
