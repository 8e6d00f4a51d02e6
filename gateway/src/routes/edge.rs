//! The edge's layers in front of every route: the client's address, rate limits, and
//! JSON-only bodies.

use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use soulchat_subjects::{ErrorCode, ServiceError};

use crate::auth::{AuthUser, bearer};
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::limits::client_key;
use crate::rate::Draw;
use crate::state::AppState;

/// 429 naming the limit, with the time to wait.
fn refused(wait: Duration) -> Response {
    metrics::counter!("soulchat_gateway_rate_limited").increment(1);
    let mut e = ServiceError::new(ErrorCode::TooManyRequests, "rate", "too many requests");
    e.retry_after = Some(wait);
    ApiError(e).into_response()
}

/// Every request but the health probes: resolves the client's address (for this and every
/// later layer and handler), then draws from the address's bucket and, with a valid token,
/// the user's. The verified caller is kept for the handler, which does not verify again.
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|peer| state.trusted_proxies.client(peer.0.ip(), request.headers()));
    if let Some(client) = client {
        request.extensions_mut().insert(ClientAddr(client));
    }
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    if let Some(client) = client
        && let Err(wait) = state.rate.take(Draw::Address(&client_key(client))).await
    {
        return refused(wait);
    }
    if let Some(auth) = verified(&state, &request) {
        if let Err(wait) = state.rate.take(Draw::User(auth.id())).await {
            return refused(wait);
        }
        request.extensions_mut().insert(auth);
    }
    next.run(request).await
}

/// The caller of a request with a valid access token; anything else is the handler's to refuse.
fn verified(state: &AppState, request: &Request) -> Option<AuthUser> {
    let token = bearer(request.headers()).ok()??;
    let claims = state.auth.verify(&token).ok()?;
    Some(AuthUser { claims, token })
}

/// Registration and password reset: the stricter bucket per client address.
pub async fn limit_accounts(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(client) = request.extensions().get::<ClientAddr>().copied()
        && let Err(wait) = state.rate.take(Draw::Accounts(&client_key(client.0))).await
    {
        return refused(wait);
    }
    next.run(request).await
}

/// A request with a body must say it is JSON: the only bodies this API reads. A browser may
/// post a form or `text/plain` to any origin without asking first; `application/json` from
/// another origin needs a CORS preflight, which only the allowed origins pass.
pub async fn json_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let length =
        headers.get(header::CONTENT_LENGTH).map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    let has_body = headers.contains_key(header::TRANSFER_ENCODING) || length.is_some_and(|n| n != Some(0));
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !is_json {
        let e = ServiceError::new(ErrorCode::UnsupportedMediaType, "body", "must be application/json");
        return ApiError(e).into_response();
    }
    next.run(request).await
}
