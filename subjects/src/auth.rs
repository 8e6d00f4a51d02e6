//! The access-token claims: issued by the user worker, verified by the gateway.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// Unique per token: logout revokes exactly this token.
    pub jti: String,
    /// The refresh-token family this token was issued from: revoking the family revokes it.
    pub fam: String,
    /// Seconds since the epoch.
    pub iat: u64,
    pub exp: u64,
}
