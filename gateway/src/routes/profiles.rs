//! Public profiles and the follow graph: `/api/profiles*`, answered by the profile worker.

use axum::Json;
use axum::extract::State;
use soulchat_subjects::Operation;
use soulchat_subjects::profile::{
    self,
    messages::{BlockRequest, FollowRequest, GetRequest, ListBlocksRequest, ListRequest, SearchRequest},
};

use crate::auth::{AuthUser, MaybeUser};
use crate::error::ApiResult;
use crate::extract::{Meta, Paging, Path};
use crate::state::AppState;
use crate::views::{ProfileEnvelope, ProfileList, ProfileView};

#[utoipa::path(get, path = "/profiles/{username}", tag = "profiles", security((), ("token" = [])), params(("username" = String, Path, description = "Whose profile.")),
    responses(
        (status = 200, description = "The profile; `following` is the caller's view.", body = ProfileEnvelope),
        (status = 404, description = "No such profile."),
    ))]
pub async fn get(
    State(state): State<AppState>,
    MaybeUser(viewer): MaybeUser,
    Meta(ctx): Meta,
    Path(username): Path<String>,
) -> ApiResult<Json<ProfileEnvelope>> {
    let ctx = with_viewer(ctx, &viewer);
    let reply = state.caller.call::<profile::Get>(&ctx, &GetRequest { username }).await?;
    Ok(Json(ProfileEnvelope::from_reply(reply)?))
}

/// The body RealWorld clients send with a follow is ignored: the path says whom.
#[utoipa::path(post, path = "/profiles/{username}/follow", tag = "profiles", security(("token" = [])), params(("username" = String, Path, description = "Whose profile.")),
    responses(
        (status = 200, description = "Now followed (following a second time changes nothing).", body = ProfileEnvelope),
        (status = 404, description = "No such profile."),
        (status = 422, description = "Nobody follows themselves."),
    ))]
pub async fn follow(
    state: State<AppState>,
    auth: AuthUser,
    meta: Meta,
    path: Path<String>,
) -> ApiResult<Json<ProfileEnvelope>> {
    relate::<profile::Follow>(state, auth, meta, path, |username| FollowRequest { username }).await
}

#[utoipa::path(delete, path = "/profiles/{username}/follow", tag = "profiles", security(("token" = [])), params(("username" = String, Path, description = "Whose profile.")),
    responses(
        (status = 200, description = "No longer followed.", body = ProfileEnvelope),
        (status = 404, description = "No such profile."),
        (status = 422, description = "Nobody follows themselves."),
    ))]
pub async fn unfollow(
    state: State<AppState>,
    auth: AuthUser,
    meta: Meta,
    path: Path<String>,
) -> ApiResult<Json<ProfileEnvelope>> {
    relate::<profile::Unfollow>(state, auth, meta, path, |username| FollowRequest { username }).await
}

/// Follows, unfollows, blocks or unblocks the profile the path names, as the caller.
async fn relate<O>(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(username): Path<String>,
    request: impl FnOnce(String) -> O::Request,
) -> ApiResult<Json<ProfileEnvelope>>
where
    O: Operation<Response = soulchat_subjects::profile::messages::ProfileReply>,
{
    let reply = state.caller.call::<O>(&ctx.with_user(auth.id()), &request(username)).await?;
    Ok(Json(ProfileEnvelope::from_reply(reply)?))
}

#[utoipa::path(post, path = "/profiles/{username}/block", tag = "profiles", security(("token" = [])), params(("username" = String, Path, description = "Whose profile.")),
    responses(
        (status = 200, description = "Now blocked (blocking a second time changes nothing): they cannot open or send into a direct conversation with the caller, neither sees the other's presence or typing, and their messages notify the caller of nothing.", body = ProfileEnvelope),
        (status = 404, description = "No such profile."),
        (status = 422, description = "Nobody blocks themselves."),
    ))]
pub async fn block(
    state: State<AppState>,
    auth: AuthUser,
    meta: Meta,
    path: Path<String>,
) -> ApiResult<Json<ProfileEnvelope>> {
    relate::<profile::Block>(state, auth, meta, path, |username| BlockRequest { username }).await
}

#[utoipa::path(delete, path = "/profiles/{username}/block", tag = "profiles", security(("token" = [])), params(("username" = String, Path, description = "Whose profile.")),
    responses(
        (status = 200, description = "No longer blocked.", body = ProfileEnvelope),
        (status = 404, description = "No such profile."),
        (status = 422, description = "Nobody blocks themselves."),
    ))]
pub async fn unblock(
    state: State<AppState>,
    auth: AuthUser,
    meta: Meta,
    path: Path<String>,
) -> ApiResult<Json<ProfileEnvelope>> {
    relate::<profile::Unblock>(state, auth, meta, path, |username| BlockRequest { username }).await
}

/// `GET /api/user/blocks`.
#[utoipa::path(get, path = "/user/blocks", tag = "profiles", security(("token" = [])),
    params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses((status = 200, description = "The profiles the caller blocks, oldest block first.", body = ProfileList)))]
pub async fn blocks(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<ProfileList>> {
    let request = ListBlocksRequest { cursor: paging.cursor, limit: paging.limit };
    Ok(Json(state.caller.call::<profile::ListBlocks>(&ctx.with_user(auth.id()), &request).await?.into()))
}

#[utoipa::path(get, path = "/profiles/{username}/followers", tag = "profiles", security((), ("token" = [])), params(("username" = String, Path, description = "Whose profile."), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses(
        (status = 200, description = "Who follows them, a page at a time.", body = ProfileList),
        (status = 404, description = "No such profile."),
    ))]
pub async fn followers(
    state: State<AppState>,
    viewer: MaybeUser,
    meta: Meta,
    path: Path<String>,
    paging: Paging,
) -> ApiResult<Json<ProfileList>> {
    list_edges::<profile::Followers>(state, viewer, meta, path, paging).await
}

#[utoipa::path(get, path = "/profiles/{username}/following", tag = "profiles", security((), ("token" = [])), params(("username" = String, Path, description = "Whose profile."), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses(
        (status = 200, description = "Whom they follow, a page at a time.", body = ProfileList),
        (status = 404, description = "No such profile."),
    ))]
pub async fn following(
    state: State<AppState>,
    viewer: MaybeUser,
    meta: Meta,
    path: Path<String>,
    paging: Paging,
) -> ApiResult<Json<ProfileList>> {
    list_edges::<profile::Following>(state, viewer, meta, path, paging).await
}

async fn list_edges<O>(
    State(state): State<AppState>,
    MaybeUser(viewer): MaybeUser,
    Meta(ctx): Meta,
    Path(username): Path<String>,
    paging: Paging,
) -> ApiResult<Json<ProfileList>>
where
    O: Operation<Request = ListRequest, Response = soulchat_subjects::profile::messages::ProfileList>,
{
    let ctx = with_viewer(ctx, &viewer);
    let request = ListRequest { username, cursor: paging.cursor, limit: paging.limit };
    Ok(Json(state.caller.call::<O>(&ctx, &request).await?.into()))
}

/// `GET /api/profiles?q=<prefix>`.
#[utoipa::path(get, path = "/profiles", tag = "profiles", security((), ("token" = [])),
    params(("q" = Option<String>, Query, description = "A username prefix."), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses((status = 200, description = "Profiles whose username starts with `q`.", body = ProfileList)))]
pub async fn search(
    State(state): State<AppState>,
    MaybeUser(viewer): MaybeUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<ProfileList>> {
    let ctx = with_viewer(ctx, &viewer);
    let request = SearchRequest {
        query: paging.param("q").unwrap_or_default(),
        cursor: paging.cursor.clone(),
        limit: paging.limit,
    };
    Ok(Json(state.caller.call::<profile::Search>(&ctx, &request).await?.into()))
}

fn with_viewer(ctx: soulchat_subjects::CallContext, viewer: &Option<AuthUser>) -> soulchat_subjects::CallContext {
    match viewer {
        Some(viewer) => ctx.with_user(viewer.id()),
        None => ctx,
    }
}

impl From<soulchat_subjects::profile::messages::ProfileList> for ProfileList {
    fn from(list: soulchat_subjects::profile::messages::ProfileList) -> Self {
        ProfileList {
            profiles: list.profiles.into_iter().map(ProfileView::from).collect(),
            next_cursor: Some(list.next_cursor).filter(|c| !c.is_empty()),
        }
    }
}
