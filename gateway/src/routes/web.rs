//! The web client: the built files of `web/` (`SOULCHAT_WEB_DIR`), served at `/` by the same
//! origin as the API, so the page needs no CORS and its WebSocket passes the origin check.
//!
//! Hashed assets (`/assets/<name>-<hash>.js`) never change under their name, so browsers keep
//! them for a year; everything else (`index.html`, the service worker) is revalidated on every
//! load, so a new build shows at once. Any other path the API does not own gets `index.html`
//! (the client routes in the page), except a missing asset, which is a 404. The content-security
//! policy allows scripts, styles and connections to this origin only; images may also come from
//! https (avatars and image messages are URLs users give).

use std::path::Path;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// `blob:` images are uploads, fetched with the token and shown from memory.
const POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' https: data: blob:; \
    style-src 'self'; script-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; \
    base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The client's routes, to merge under the API's: `/assets/*`, and everything else as the page.
pub fn router(dir: &Path) -> Router<AppState> {
    let assets = ServeDir::new(dir.join("assets"));
    let page = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
    Router::new()
        .nest_service("/assets", assets)
        .layer(header_layer(header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .fallback_service(page)
        .layer(header_layer(header::CACHE_CONTROL, "no-cache"))
        .layer(header_layer(header::CONTENT_SECURITY_POLICY, POLICY))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
}

/// Sets `name` unless the route already did (so the assets keep their longer cache).
fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}
