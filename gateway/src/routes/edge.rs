//! The edge's layers in front of every route: request metrics, the client's address, rate
//! limits, the audit of refusals, and JSON-only bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use soulchat_subjects::metrics;
use soulchat_subjects::{ErrorCode, ServiceError};

use crate::auth::{AuthUser, bearer};
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::extract::Meta;
use crate::limits::client_key;
use crate::rate::Draw;
use crate::state::AppState;

/// 429 naming the limit, with the time to wait.
fn refused(wait: Duration) -> Response {
    metrics::rate_limited();
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

/// A request with a body must say it is JSON: the only bodies this API reads but uploads. A
/// browser may post a form or `text/plain` to any origin without asking first; `application/json`
/// from another origin needs a CORS preflight, which only the allowed origins pass. An upload
/// takes any type: it needs the `Authorization` header, which no cross-origin request carries
/// without a preflight either.
pub async fn json_only(request: Request, next: Next) -> Response {
    if request.uri().path() == UPLOADS {
        return next.run(request).await;
    }
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

/// The one route whose body is not JSON.
const UPLOADS: &str = "/api/attachments";

/// Every 403 the edge answers is a security event for the audit log: a member's role that does
/// not allow the change, an administrator's action, a page's origin on `/ws`. Recorded with the
/// method and route template that refused (never the raw path), the caller when known, and the
/// request's id, address and user agent.
pub async fn audit_refusals(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(Meta(ctx)) = Meta::from_request_parts(&mut parts, &state).await;
    let caller = parts.extensions.get::<AuthUser>().map(|auth| auth.id().to_owned()).unwrap_or_default();
    let method = parts.method.clone();
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status() == StatusCode::FORBIDDEN {
        let route = response.extensions().get::<RouteTemplate>().map_or("unmatched", |RouteTemplate(t)| t);
        crate::audit::refused(&state, &ctx, &caller, &format!("{method} {route}")).await;
    }
    response
}

/// The route template a response came from, left by [`route_template`] for [`measure`].
#[derive(Clone)]
struct RouteTemplate(Arc<str>);

/// On a router's matched routes: records which template answered. Nested routers only know
/// their full template inside, so it travels out on the response.
pub async fn route_template(request: Request, next: Next) -> Response {
    let template = request.extensions().get::<MatchedPath>().map(|path| RouteTemplate(path.as_str().into()));
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

/// Outermost: counts and times every request by method, route template (`unmatched` when no
/// route answered) and status. The raw path never becomes a label.
pub async fn measure(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = response.extensions().get::<RouteTemplate>().map(|RouteTemplate(template)| template.clone());
    metrics::http_request(method.as_str(), route, response.status().as_u16(), started.elapsed());
    response
}
