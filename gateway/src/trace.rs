//! Each HTTP request's id and span, and the spans of the live traffic: a socket's `send` frame
//! and the fan-out of a chat event to the sockets here (a child of the span that sent it).
//!
//! The id is the client's `Soulchat-Request-Id` (or
//! `X-Request-Id`) when it is a sensible one, a new one otherwise; it goes to the workers with
//! every call and back to the client on the response. The span (`http`, named after the route
//! template, never the raw path, which may hold a token) is a child of the client's
//! `traceparent` when that parses, and the parent of every call the request makes.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use soulchat_subjects::{headers, trace};

/// Longest client-chosen request id kept.
const MAX_REQUEST_ID: usize = 128;

/// Makes sure the request carries a request id, and answers with it.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let name = HeaderName::from_bytes(headers::REQUEST_ID.as_bytes()).expect("a valid header name");
    let chosen = [name.as_str(), "x-request-id"].into_iter().find_map(|h| {
        request.headers().get(h).filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.to_str().is_ok()).cloned()
    });
    let id = chosen
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).expect("a UUID is a header value"));
    request.headers_mut().insert(name.clone(), id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(name, id);
    response
}

/// The span of handling one frame of a socket (`send`): a new trace, like an HTTP request.
pub fn frame_span(frame: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "frame",
        otel.name = format!("ws {frame}"),
        otel.kind = "server",
        frame,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    trace::record_ids(&span);
    span
}

/// The span of delivering a committed chat event to this gateway's sockets.
pub fn fan_out_span(message: &async_nats::jetstream::Message) -> tracing::Span {
    let span = tracing::info_span!(
        "fan_out",
        otel.name = "chat fan-out",
        otel.kind = "consumer",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    trace::follow(&span, message.headers.as_ref());
    span
}

/// The span every line logged while serving `request` is in.
pub fn http_span(request: &Request) -> tracing::Span {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "http",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        method = %request.method(),
        route,
        request_id = header(headers::REQUEST_ID).unwrap_or("-"),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    trace::set_parent(&span, header(headers::TRACEPARENT));
    trace::record_ids(&span);
    span
}
