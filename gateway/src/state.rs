//! What every handler shares.

use std::sync::Arc;

use soulchat_subjects::Caller;

use crate::auth::Verifier;
use crate::limits::{Limiter, LoginLimits};

#[derive(Clone)]
pub struct AppState {
    pub caller: Caller,
    pub auth: Arc<Verifier>,
    pub login_limits: LoginLimits,
    pub limiter: Limiter,
}
