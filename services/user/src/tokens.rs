//! Access and refresh tokens.
//!
//! Access tokens are HS256 JWTs carrying the user id, a unique `jti` and the refresh family
//! they came from, so one logout can revoke exactly them. Refresh tokens are 256 random bits,
//! handed to the client once and stored only as their SHA-256.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use sha2::{Digest, Sha256};
use soulchat_subjects::auth::AccessClaims;

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub jwt_secret: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

pub struct Issuer {
    key: EncodingKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// A signed access token and what revoking it needs.
pub struct AccessToken {
    pub token: String,
}

impl Issuer {
    pub fn new(config: &TokenConfig) -> Self {
        Issuer {
            key: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
        }
    }

    pub fn access(&self, user_id: &str, family: &str) -> anyhow::Result<AccessToken> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            jti: uuid::Uuid::now_v7().to_string(),
            fam: family.to_owned(),
            iat: now,
            exp: now + self.access_ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.key).context("signing an access token")?;
        Ok(AccessToken { token })
    }
}

/// A new refresh token (for the client) and its hash (for the database).
pub fn new_refresh_token() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_unique_and_hash_stably() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 64);
    }
}
