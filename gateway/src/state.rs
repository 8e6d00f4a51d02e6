//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use soulchat_subjects::Caller;

use crate::auth::Verifier;
use crate::limits::{Limiter, LoginLimits, SendLimit};
use crate::ws::Hub;

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

pub struct Shared {
    pub caller: Caller,
    pub auth: Arc<Verifier>,
    pub login_limits: LoginLimits,
    pub limiter: Limiter,
    pub send_limit: SendLimit,
    pub hub: Hub,
    /// Single-use WebSocket tickets.
    pub tickets: async_nats::jetstream::kv::Store,
    /// Browser origins allowed (CORS, and on WebSocket upgrade).
    pub cors_origins: Arc<Vec<String>>,
    /// Who may send system alerts.
    pub admins: Arc<Vec<String>>,
    /// Cancelled when the gateway stops: open sockets close (1001) so the server can drain.
    pub shutdown: tokio_util::sync::CancellationToken,
}
