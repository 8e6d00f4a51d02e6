//! The route table and the layers around it.

mod attachments;
mod conversations;
mod edge;
mod health;
mod moderation;
mod notifications;
mod openapi;
mod pins;
mod profiles;
mod reactions;
mod search;
mod threads;
mod users;
mod web;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::{Extension, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use attachments::DEFAULT_MAX_BYTES as DEFAULT_ATTACHMENT_MAX_BYTES;

use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

/// The API under `/api`, health, the WebSocket, and the web client at `/` when `web_dir` holds one.
pub fn router(state: AppState, cors_origins: &[String], web_dir: Option<&std::path::Path>) -> anyhow::Result<Router> {
    // Registration and password reset create accounts or send mail: a stricter bucket.
    let accounts_state = state.clone();
    let accounts = move |route: UtoipaMethodRouter<AppState>| {
        route.map(|r| r.route_layer(from_fn_with_state(accounts_state.clone(), edge::limit_accounts)))
    };
    let (routes, api) = routes(accounts).split_for_parts();
    let document = openapi::Document::new(api)?;
    let origins = cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("invalid CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);

    let routes = routes.layer(Extension(document));
    let routes = match web_dir {
        Some(dir) => routes.merge(web::router(dir)),
        None => routes.fallback(health::not_found),
    };
    Ok(routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(edge::json_only))
        .layer(from_fn_with_state(state.clone(), edge::audit_refusals))
        .layer(from_fn_with_state(state.clone(), edge::limit))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(crate::trace::http_span))
        .layer(from_fn(crate::trace::request_id))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(from_fn(edge::measure))
        .with_state(state))
}

/// The OpenAPI document of [`router`]'s routes.
pub fn openapi() -> anyhow::Result<String> {
    let (_, api) = routes(|route| route).split_for_parts();
    Ok(openapi::Document::new(api)?.json().to_owned())
}

/// The route table, each route from its handler's `#[utoipa::path]`. `accounts` adds the
/// account-creation rate limit (which needs the running state; the document does not).
fn routes(accounts: impl Fn(UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState>) -> OpenApiRouter<AppState> {
    // Responses with tokens or account data must not be kept by a browser or proxy cache.
    let no_store = |route: UtoipaMethodRouter<AppState>| {
        let no_store = SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        route.map(|r| r.route_layer(no_store))
    };
    let api = OpenApiRouter::new()
        .routes(accounts(no_store(routes!(users::register))))
        .routes(no_store(routes!(users::login)))
        .routes(no_store(routes!(users::refresh)))
        .routes(no_store(routes!(users::logout)))
        .routes(no_store(routes!(users::current, users::update, users::delete)))
        .routes(routes!(users::request_email_verification, users::verify_email))
        .routes(routes!(users::set_phone))
        .routes(routes!(users::verify_phone))
        .routes(accounts(routes!(users::forgot_password)))
        .routes(accounts(no_store(routes!(users::reset_password))))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::mark_read))
        .routes(routes!(notifications::preferences, notifications::put_preferences))
        .routes(routes!(notifications::push_key))
        .routes(routes!(notifications::subscribe_push, notifications::unsubscribe_push))
        .routes(routes!(notifications::alert))
        .routes(routes!(profiles::search))
        .routes(routes!(profiles::get))
        .routes(routes!(profiles::follow, profiles::unfollow))
        .routes(routes!(profiles::followers))
        .routes(routes!(profiles::following))
        .routes(routes!(profiles::block, profiles::unblock))
        .routes(routes!(profiles::blocks))
        .routes(routes!(conversations::list, conversations::create_group))
        .routes(routes!(conversations::open_direct))
        .routes(routes!(conversations::get, conversations::update, conversations::delete))
        .routes(routes!(conversations::add_member))
        .routes(routes!(conversations::change_role, conversations::remove_member))
        .routes(routes!(conversations::history, conversations::send))
        .routes(routes!(conversations::edit, conversations::delete_message))
        .routes(routes!(conversations::mark_read))
        .routes(routes!(search::messages))
        .routes(routes!(moderation::report))
        .routes(routes!(moderation::list_reports))
        .routes(routes!(moderation::resolve_report))
        .routes(routes!(moderation::suspend))
        .routes(routes!(attachments::upload))
        .routes(routes!(attachments::download))
        .routes(routes!(reactions::add_reaction))
        .routes(routes!(reactions::remove_reaction))
        .routes(routes!(pins::list_pins))
        .routes(routes!(pins::pin, pins::unpin))
        .routes(routes!(threads::thread))
        .routes(no_store(routes!(crate::ws::ticket)))
        .routes(routes!(openapi::document))
        .route_layer(from_fn(edge::route_template))
        .fallback(health::not_found);
    OpenApiRouter::new()
        .nest("/api", api)
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(crate::ws::upgrade))
        .route_layer(from_fn(edge::route_template))
}
