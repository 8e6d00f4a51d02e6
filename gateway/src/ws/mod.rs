//! The WebSocket API (`GET /ws`) and its tickets (`POST /api/ws/ticket`).
//!
//! A socket authenticates with the `Authorization` header, or, for browsers (which cannot set
//! headers on a WebSocket), with a single-use ticket valid for 30 s: the token itself never
//! appears in a URL or a log line. Browser origins are checked against `SOULCHAT_CORS_ORIGINS`.
//! Buffers are sized per socket on purpose: an idle socket should cost kilobytes, not the
//! WebSocket library's default hundreds of kilobytes.
//!
//! This module and [`session`] are the API, on top of [`crate::state`]; [`hub`] and the
//! modules it wires ([`registry`], [`chat_feed`], [`deliveries`], [`presence`]) are the live
//! machinery below it, which `state` holds and which never reaches back up.

mod chat_feed;
mod deliveries;
pub mod hub;
mod presence;
mod registry;
mod session;

use axum::Json;
use axum::extract::{FromRequestParts, Query, Request, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use soulchat_subjects::{ServiceError, streams};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::TicketView;

/// The largest frame the socket reads whole. A frame over the API's 64 KiB limit closes the
/// socket with 1009: one up to this size is read first, so that the close handshake completes
/// cleanly; a larger one is refused from its header, unread, and the close is best effort.
const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Read buffer per socket (the library's default is 128 KiB, zero-filled on first read). Client
/// frames are small; a large one is read in several chunks.
const READ_BUFFER_BYTES: usize = 2 * 1024;

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    ticket: Option<String>,
}

/// `POST /api/ws/ticket` → 201 `{ticket}`.
#[utoipa::path(post, path = "/ws/ticket", tag = "live", security(("token" = [])),
    responses((status = 201, description = "A ticket for one WebSocket connection, valid for 30 s.", body = TicketView)))]
pub async fn ticket(State(state): State<AppState>, auth: AuthUser) -> ApiResult<(StatusCode, Json<TicketView>)> {
    let ticket: String = rand::random::<[u8; 24]>().iter().map(|b| format!("{b:02x}")).collect();
    state.tickets.put(&ticket, Bytes::from(auth.token.clone())).await.map_err(|e| {
        tracing::error!("storing a WebSocket ticket: {e}");
        ServiceError::unavailable()
    })?;
    Ok((StatusCode::CREATED, Json(TicketView { ticket })))
}

/// Whether a browser's `Origin` is this server itself (the web client it serves): its host and
/// port are the request's `Host`.
fn same_origin(origin: &str, host: Option<&header::HeaderValue>) -> bool {
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    matches!((authority, host.and_then(|h| h.to_str().ok())), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// `GET /ws`: checks the origin and the credentials, then upgrades.
#[utoipa::path(get, path = "/ws", tag = "live", security((), ("token" = [])),
    description = "The WebSocket API (frames in the README). Browsers authenticate with `ticket`, \
        other clients with the `Authorization` header.",
    params(("ticket" = Option<String>, Query, description = "From `POST /api/ws/ticket`; single use.")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "Not a WebSocket upgrade request."),
        (status = 403, description = "The page's origin is not allowed."),
        (status = 503, description = "Tickets cannot be checked right now."),
    ))]
pub async fn upgrade(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    // The socket keeps its connection's place under the server's caps for as long as it lives.
    let slot = parts.extensions.remove::<crate::server::Slot>();
    match accept(&state, parts).await {
        Ok((upgrade, auth)) => upgrade
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(MAX_FRAME_BYTES)
            .max_frame_size(MAX_FRAME_BYTES)
            .on_upgrade(move |socket| async move {
                session::run(socket, state, auth).await;
                drop(slot);
            })
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn accept(state: &AppState, mut parts: Parts) -> Result<(WebSocketUpgrade, AuthUser), ApiError> {
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            same_origin(o, parts.headers.get(header::HOST)) || state.cors_origins.iter().any(|a| a == o)
        });
        if !allowed {
            return Err(ServiceError::forbidden("origin", "is not allowed").into());
        }
    }
    let Query(query) =
        Query::<TicketQuery>::try_from_uri(&parts.uri).map_err(|_| ServiceError::bad_request("query", "is invalid"))?;
    let auth = match query.ticket {
        Some(ticket) if !parts.headers.contains_key(header::AUTHORIZATION) => redeem(state, &ticket).await?,
        _ => AuthUser::from_request_parts(&mut parts, state).await?,
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, state)
        .await
        .map_err(|_| ServiceError::bad_request("upgrade", "a WebSocket upgrade request is required"))?;
    Ok((upgrade, auth))
}

/// Takes a ticket out of the bucket, so that it works once, and checks the token it stands for.
async fn redeem(state: &AppState, ticket: &str) -> Result<AuthUser, ServiceError> {
    let invalid = || ServiceError::unauthorized("ticket", "is invalid");
    if ticket.is_empty() || ticket.len() > 128 || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let entry = state.tickets.entry(ticket).await.map_err(|_| ServiceError::unavailable())?;
    let Some(entry) = entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put) else {
        return Err(invalid());
    };
    // Whoever deletes this revision first owns the ticket; a second use finds it gone.
    state.tickets.delete_expect_revision(ticket, Some(entry.revision)).await.map_err(|_| invalid())?;
    let token = String::from_utf8(entry.value.to_vec()).map_err(|_| invalid())?;
    let claims = state.auth.verify(&token)?;
    Ok(AuthUser { claims, token })
}

/// The bucket that holds tickets, declared with the others in `soulchat-subjects`.
pub async fn tickets(js: &async_nats::jetstream::Context) -> anyhow::Result<async_nats::jetstream::kv::Store> {
    Ok(js.get_key_value(streams::WS_TICKETS_BUCKET).await?)
}
