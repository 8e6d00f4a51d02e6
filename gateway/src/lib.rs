//! The HTTP and WebSocket edge. It authenticates (JWT, revocations), limits (connections and
//! their timeouts, request rates, body size, login attempts), and translates each request into
//! one NATS call to the worker that owns it. It has no database and no business rules: a handler
//! here reads the request, calls the contract in `soulchat-subjects`, and shapes the answer.
//!
//! Modules depend downwards only:
//! - on top, `server` (the accept loop: connection caps and timeouts), then the APIs: `routes`
//!   (REST, with the edge's layers: rate limits in `rate`, JSON-only bodies, response headers)
//!   and `ws` with its sessions;
//! - `state`, which only wires what they share, including the live machinery of
//!   `ws::hub` (socket registry, chat stream, deliveries, presence);
//! - below, the parts: `chat` (the calls REST and WebSocket share), `auth` and
//!   `revocations`, `limits`, `client` (the client's address, through trusted proxies),
//!   `people` (ids and names), `live` (publishing live frames), `views` (every JSON shape,
//!   WebSocket frames included), `extract`, `error`, `trace` (each request's id and span) and
//!   `audit` (the refusals it records).

mod audit;
mod auth;
mod chat;
mod client;
mod error;
mod extract;
mod limits;
mod live;
mod people;
mod rate;
mod revocations;
mod routes;
mod server;
mod state;
mod trace;
mod views;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use soulchat_subjects::Caller;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use client::ProxyNet;
pub use limits::LoginLimits;
pub use rate::{Rate, RateLimits};
pub use routes::{DEFAULT_ATTACHMENT_MAX_BYTES, openapi};
pub use server::ConnectionLimits;

#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub jwt_secret: String,
    /// Deadline of every call to a worker; past it the client gets 503.
    pub request_timeout: Duration,
    /// Browser origins allowed by CORS and on WebSocket upgrade.
    pub cors_origins: Vec<String>,
    pub redis_url: Option<String>,
    pub login_limits: LoginLimits,
    /// Messages one user may send per second.
    pub send_limit: u32,
    /// Frames queued per socket before the socket counts as too slow and is closed (4000).
    pub socket_queue: usize,
    /// User ids allowed to send system alerts, handle reports and suspend accounts.
    pub admin_user_ids: Vec<String>,
    /// Token buckets per client address, per user, and for account requests.
    pub rate_limits: RateLimits,
    /// Timeouts and caps of HTTP connections.
    pub connections: ConnectionLimits,
    /// Proxies whose `X-Forwarded-For` names the client (addresses or CIDR networks).
    pub trusted_proxies: Vec<ProxyNet>,
    /// The built web client (`web/dist`), served at `/`; none: `/` answers 404.
    pub web_dir: Option<std::path::PathBuf>,
    /// The largest attachment upload, in bytes (413 beyond).
    pub attachment_max_bytes: u64,
}

/// A gateway bound to its address, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    router: axum::Router,
    connections: ConnectionLimits,
    trusted_proxies: client::TrustedProxies,
}

impl Gateway {
    /// Binds the listener and connects what the gateway needs (revocation watch, Redis, the
    /// WebSocket hub's feeds, which run until `shutdown`).
    pub async fn bind(
        config: Config,
        client: async_nats::Client,
        disruptions: soulchat_subjects::connect::Disruptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Gateway> {
        soulchat_subjects::metrics::zero::gateway();
        let js = async_nats::jetstream::new(client.clone());
        let identity = Some(soulchat_subjects::broker::Identity::Gateway);
        soulchat_subjects::streams::declare(&js, identity).await?;
        let redeclare = soulchat_subjects::streams::declare_after_reconnects(js.clone(), identity, disruptions.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = redeclare => {}
                _ = stop.cancelled() => {}
            }
        });
        let revocations = revocations::Revocations::watch(&js).await?;
        let limiter = limits::Limiter::connect(config.redis_url.as_deref()).await?;
        let caller = Caller::new(client.clone(), config.request_timeout);
        let rate =
            rate::RateLimiter::connect(config.rate_limits.clone(), config.redis_url.as_deref(), shutdown.clone())
                .await?;
        let trusted_proxies = client::TrustedProxies::new(config.trusted_proxies.clone());
        let state = state::AppState::new(state::Shared {
            hub: ws::hub::Hub::start(client, caller.clone(), config.socket_queue, disruptions, shutdown.clone())
                .await?,
            shutdown,
            tickets: ws::tickets(&js).await?,
            attachments: js.get_object_store(soulchat_subjects::streams::ATTACHMENTS_BUCKET).await?,
            attachment_max_bytes: config.attachment_max_bytes,
            chat: chat::Chat::new(caller.clone(), limits::SendLimit::new(limiter.clone(), config.send_limit)),
            caller,
            auth: Arc::new(auth::Verifier::new(&config.jwt_secret, revocations)),
            login_limits: config.login_limits.clone(),
            limiter,
            rate,
            trusted_proxies: trusted_proxies.clone(),
            cors_origins: Arc::new(config.cors_origins.clone()),
            admins: Arc::new(config.admin_user_ids.clone()),
        });
        let web_dir = config.web_dir.as_deref().filter(|dir| {
            let built = dir.join("index.html").is_file();
            if !built {
                tracing::warn!(dir = %dir.display(), "no built web client there (scripts/build-web); / answers 404");
            }
            built
        });
        let router = routes::router(state, &config.cors_origins, web_dir)?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding the gateway to {}", config.http_addr))?;
        Ok(Gateway { listener, router, connections: config.connections, trusted_proxies })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown`, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "gateway listening");
        server::serve(self.listener, self.router, self.connections, self.trusted_proxies, shutdown).await
    }
}
