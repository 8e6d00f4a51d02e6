//! Liveness, readiness and the JSON 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use soulchat_subjects::{CallContext, chat, notification, profile, user};

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
pub async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Every worker answers its health operation.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let ctx = CallContext::internal();
    let req = Default::default();
    let (u, p, c, n) = tokio::join!(
        state.caller.call::<user::Health>(&ctx, &req),
        state.caller.call::<profile::Health>(&ctx, &req),
        state.caller.call::<chat::Health>(&ctx, &req),
        state.caller.call::<notification::Health>(&ctx, &req),
    );
    let services = [
        (user::SERVICE.name, u.is_ok()),
        (profile::SERVICE.name, p.is_ok()),
        (chat::SERVICE.name, c.is_ok()),
        (notification::SERVICE.name, n.is_ok()),
    ];
    let ready = services.iter().all(|(_, up)| *up);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "services": services.iter().map(|(name, up)| (name.to_string(), serde_json::json!(if *up { "up" } else { "down" }))).collect::<serde_json::Map<_, _>>(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

pub async fn not_found() -> ApiError {
    ApiError(soulchat_subjects::ServiceError::not_found("route"))
}
