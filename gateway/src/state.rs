//! What every handler shares. This module only wires: it holds the parts the handlers use and
//! depends on them, never the other way round (the auth extractors find the [`Verifier`]
//! through [`FromRef`]).

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use soulchat_subjects::Caller;

use crate::auth::Verifier;
use crate::chat::Chat;
use crate::client::TrustedProxies;
use crate::limits::{Limiter, LoginLimits};
use crate::rate::RateLimiter;
use crate::ws::hub::Hub;

/// The shared state behind one pointer: axum clones the state for every extractor of every
/// request, and cloning the NATS clients and the bucket handle field by field showed in profiles.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

pub struct Shared {
    pub caller: Caller,
    pub auth: Arc<Verifier>,
    /// The chat calls REST and WebSocket share (sending is rate limited there).
    pub chat: Chat,
    pub login_limits: LoginLimits,
    pub limiter: Limiter,
    /// The edge's token buckets (per address, per user, account requests).
    pub rate: RateLimiter,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    pub hub: Hub,
    /// Uploaded attachments (`soulchat_attachments`).
    pub attachments: async_nats::jetstream::object_store::ObjectStore,
    /// The largest upload, in bytes.
    pub attachment_max_bytes: u64,
    /// Single-use WebSocket tickets.
    pub tickets: async_nats::jetstream::kv::Store,
    /// Browser origins allowed (CORS, and on WebSocket upgrade).
    pub cors_origins: Arc<Vec<String>>,
    /// Who may send system alerts, handle reports and suspend accounts.
    pub admins: Arc<Vec<String>>,
    /// Cancelled when the gateway stops: open sockets close (1001) so the server can drain.
    pub shutdown: tokio_util::sync::CancellationToken,
}
