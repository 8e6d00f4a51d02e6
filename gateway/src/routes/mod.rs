//! The route table and the layers around it.

mod conversations;
mod edge;
mod health;
mod notifications;
mod profiles;
mod users;
mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, get, patch, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::extract::MAX_BODY_BYTES;
use crate::state::AppState;

/// The API under `/api`, health, the WebSocket, and the web client at `/` when `web_dir` holds one.
pub fn router(state: AppState, cors_origins: &[String], web_dir: Option<&std::path::Path>) -> anyhow::Result<Router> {
    // Responses with tokens or account data must not be kept by a browser or proxy cache.
    let no_store = |route: MethodRouter<AppState>| {
        route.route_layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
    };
    // Registration and password reset create accounts or send mail: a stricter bucket.
    let accounts =
        |route: MethodRouter<AppState>| route.route_layer(from_fn_with_state(state.clone(), edge::limit_accounts));
    let api = Router::new()
        .route("/users", accounts(no_store(post(users::register))))
        .route("/users/login", no_store(post(users::login)))
        .route("/users/refresh", no_store(post(users::refresh)))
        .route("/users/logout", no_store(post(users::logout)))
        .route("/user", no_store(get(users::current).put(users::update).delete(users::delete)))
        .route("/user/email/verify", post(users::request_email_verification).get(users::verify_email))
        .route("/user/phone", put(users::set_phone))
        .route("/user/phone/verify", post(users::verify_phone))
        .route("/users/password/forgot", accounts(post(users::forgot_password)))
        .route("/users/password/reset", accounts(no_store(post(users::reset_password))))
        .route("/notifications", get(notifications::list))
        .route("/notifications/read", post(notifications::mark_read))
        .route("/notifications/preferences", get(notifications::preferences).put(notifications::put_preferences))
        .route("/push/subscriptions", post(notifications::subscribe_push).delete(notifications::unsubscribe_push))
        .route("/admin/alerts", post(notifications::alert))
        .route("/profiles", get(profiles::search))
        .route("/profiles/{username}", get(profiles::get))
        .route("/profiles/{username}/follow", post(profiles::follow).delete(profiles::unfollow))
        .route("/profiles/{username}/followers", get(profiles::followers))
        .route("/profiles/{username}/following", get(profiles::following))
        .route("/conversations", get(conversations::list).post(conversations::create_group))
        .route("/conversations/direct", post(conversations::open_direct))
        .route(
            "/conversations/{id}",
            get(conversations::get).patch(conversations::update).delete(conversations::delete),
        )
        .route("/conversations/{id}/members", post(conversations::add_member))
        .route(
            "/conversations/{id}/members/{username}",
            patch(conversations::change_role).delete(conversations::remove_member),
        )
        .route("/conversations/{id}/messages", get(conversations::history).post(conversations::send))
        .route("/conversations/{id}/messages/{seq}", patch(conversations::edit).delete(conversations::delete_message))
        .route("/conversations/{id}/read", post(conversations::mark_read))
        .route("/ws/ticket", no_store(post(crate::ws::ticket)))
        .fallback(health::not_found);

    let origins = cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("invalid CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);

    let routes = Router::new()
        .nest("/api", api)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/ws", get(crate::ws::upgrade));
    let routes = match web_dir {
        Some(dir) => routes.merge(web::router(dir)),
        None => routes.fallback(health::not_found),
    };
    Ok(routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(edge::json_only))
        .layer(from_fn_with_state(state.clone(), edge::limit))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(crate::trace::http_span))
        .layer(from_fn(crate::trace::request_id))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .with_state(state))
}
