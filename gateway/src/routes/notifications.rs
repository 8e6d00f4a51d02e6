//! Notifications, preferences, Web Push subscriptions and system alerts, answered by the
//! notification worker.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use soulchat_subjects::ServiceError;
use soulchat_subjects::notification::{self, messages as nm};

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Meta, Paging};
use crate::state::AppState;
use crate::views::notifications::*;

/// `GET /api/notifications?unread=true&cursor=&limit=`.
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("token" = [])),
    params(("unread" = Option<bool>, Query, description = "Only unread ones."), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 50 by default.")),
    responses((status = 200, description = "Notifications and system alerts, newest first, with the unread count.", body = NotificationList)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    paging: Paging,
) -> ApiResult<Json<NotificationList>> {
    let unread_only = match paging.param("unread").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => return Err(ServiceError::invalid("unread", "must be true or false").into()),
    };
    let request = nm::ListRequest { unread_only, cursor: paging.cursor, limit: paging.limit };
    let list = state.caller.call::<notification::List>(&ctx.with_user(auth.id()), &request).await?;
    Ok(Json(NotificationList {
        notifications: list.notifications.into_iter().map(NotificationView::from).collect(),
        unread_count: list.unread_count,
        next_cursor: Some(list.next_cursor).filter(|c| !c.is_empty()),
    }))
}

/// `POST /api/notifications/read` with `{ids:[…]}` or `{all:true}`.
#[utoipa::path(post, path = "/notifications/read", tag = "notifications", security(("token" = [])), request_body = MarkReadBody,
    responses((status = 204, description = "Marked read.")))]
pub async fn mark_read(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<MarkReadBody>,
) -> ApiResult<StatusCode> {
    if !body.all && body.ids.is_empty() {
        return Err(ServiceError::invalid("ids", "can't be blank (or send all: true)").into());
    }
    let request = nm::MarkReadRequest { ids: body.ids, all: body.all };
    state.caller.call::<notification::MarkRead>(&ctx.with_user(auth.id()), &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/notifications/preferences", tag = "notifications", security(("token" = [])),
    responses((status = 200, description = "Channel opt-ins and muted conversations.", body = PreferencesEnvelope)))]
pub async fn preferences(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
) -> ApiResult<Json<PreferencesEnvelope>> {
    let reply =
        state.caller.call::<notification::GetPreferences>(&ctx.with_user(auth.id()), &Default::default()).await?;
    Ok(Json(PreferencesEnvelope { preferences: reply.into() }))
}

#[utoipa::path(put, path = "/notifications/preferences", tag = "notifications", security(("token" = [])), request_body = PreferencesEnvelope,
    responses((status = 200, description = "The stored preferences.", body = PreferencesEnvelope)))]
pub async fn put_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<PreferencesEnvelope>,
) -> ApiResult<Json<PreferencesEnvelope>> {
    let request: nm::Preferences = body.preferences.into();
    let reply = state.caller.call::<notification::PutPreferences>(&ctx.with_user(auth.id()), &request).await?;
    Ok(Json(PreferencesEnvelope { preferences: reply.into() }))
}

/// `GET /api/push/public-key`: what a browser subscribes with; 404 when this server sends no
/// Web Push.
#[utoipa::path(get, path = "/push/public-key", tag = "notifications",
    responses(
        (status = 200, description = "The VAPID public key.", body = PushKeyView),
        (status = 404, description = "This server has no Web Push."),
    ))]
pub async fn push_key(State(state): State<AppState>, Meta(ctx): Meta) -> ApiResult<Json<PushKeyView>> {
    let reply = state.caller.call::<notification::PushKey>(&ctx, &nm::PushKeyRequest {}).await?;
    Ok(Json(PushKeyView { public_key: reply.public_key }))
}

#[utoipa::path(post, path = "/push/subscriptions", tag = "notifications", security(("token" = [])), request_body = PushSubscriptionBody,
    responses((status = 201, description = "The browser's subscription is stored.", body = SubscriptionEnvelope)))]
pub async fn subscribe_push(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<PushSubscriptionBody>,
) -> ApiResult<(StatusCode, Json<SubscriptionEnvelope>)> {
    let request = nm::SubscribePushRequest { endpoint: body.endpoint, p256dh: body.keys.p256dh, auth: body.keys.auth };
    let reply = state.caller.call::<notification::SubscribePush>(&ctx.with_user(auth.id()), &request).await?;
    Ok((StatusCode::CREATED, Json(SubscriptionEnvelope { subscription: SubscriptionView { id: reply.id } })))
}

#[utoipa::path(delete, path = "/push/subscriptions", tag = "notifications", security(("token" = [])), request_body = EndpointBody,
    responses((status = 204, description = "The subscription is gone.")))]
pub async fn unsubscribe_push(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<EndpointBody>,
) -> ApiResult<StatusCode> {
    let request = nm::UnsubscribePushRequest { endpoint: body.endpoint };
    state.caller.call::<notification::UnsubscribePush>(&ctx.with_user(auth.id()), &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/alerts`: admins only (`SOULCHAT_ADMIN_USER_IDS`).
#[utoipa::path(post, path = "/admin/alerts", tag = "notifications", security(("token" = [])), request_body = AlertBody,
    responses(
        (status = 201, description = "The alert, sent to every user.", body = NotificationEnvelope),
        (status = 403, description = "The caller is not an administrator."),
    ))]
pub async fn alert(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    JsonBody(body): JsonBody<AlertBody>,
) -> ApiResult<(StatusCode, Json<NotificationEnvelope>)> {
    super::moderation::require_admin(&state, &auth)?;
    let request = nm::AlertRequest { title: body.title, body: body.body };
    let reply = state.caller.call::<notification::Alert>(&ctx.with_user(auth.id()), &request).await?;
    Ok((StatusCode::CREATED, Json(NotificationEnvelope { notification: reply.into() })))
}
