//! Access and refresh tokens.
//!
//! Access tokens are HS256 JWTs carrying the user id, a unique `jti` and the refresh family
//! they came from, so one logout can revoke exactly them. Refresh tokens are 256 random bits,
//! handed to the client once and stored only as their SHA-256.
//!
//! A refresh token's successor is not random but derived from it with a keyed hash (HMAC under
//! the signing key), and so is the access token issued with it (its `jti` derived the same way,
//! its `iat` the moment of rotation): parallel refreshes of one token within the grace all get
//! the same pair without the database ever holding a usable token.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{EncodingKey, Header};
use sha2::{Digest, Sha256};
use soulchat_subjects::auth::AccessClaims;

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub jwt_secret: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token still yields the pair it was rotated into (parallel
    /// refreshes from one client); after it, presenting it again revokes its family.
    pub refresh_grace: Duration,
}

pub struct Issuer {
    key: EncodingKey,
    /// Keys the derivation of rotated pairs.
    secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_grace: Duration,
}

/// A signed access token and what revoking it needs.
pub struct AccessToken {
    pub token: String,
}

/// What refreshing one token yields; the same every time for the same token and rotation time.
pub struct Rotated {
    pub access: AccessToken,
    pub refresh_token: String,
    pub refresh_hash: String,
}

impl Issuer {
    pub fn new(config: &TokenConfig) -> Self {
        Issuer {
            key: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
            secret: config.jwt_secret.as_bytes().to_vec(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            refresh_grace: config.refresh_grace,
        }
    }

    pub fn access(&self, user_id: &str, family: &str) -> anyhow::Result<AccessToken> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        self.sign(user_id, family, uuid::Uuid::now_v7().to_string(), now)
    }

    /// The pair that refreshing `presented` (rotated at `rotated_at_ms`) yields.
    pub fn rotated(&self, presented: &str, user_id: &str, family: &str, rotated_at_ms: i64) -> anyhow::Result<Rotated> {
        let refresh_token = URL_SAFE_NO_PAD.encode(self.derive(b"refresh", presented));
        let jti = uuid::Builder::from_random_bytes(self.derive(b"jti", presented)[..16].try_into()?).into_uuid();
        let iat = u64::try_from(rotated_at_ms / 1000).unwrap_or_default();
        Ok(Rotated {
            access: self.sign(user_id, family, jti.to_string(), iat)?,
            refresh_hash: hash_refresh_token(&refresh_token),
            refresh_token,
        })
    }

    fn sign(&self, user_id: &str, family: &str, jti: String, iat: u64) -> anyhow::Result<AccessToken> {
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            jti,
            fam: family.to_owned(),
            iat,
            exp: iat + self.access_ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.key).context("signing an access token")?;
        Ok(AccessToken { token })
    }

    /// HMAC-SHA256 of `token` under the secret, labelled by `purpose` (never a JWT's input,
    /// which starts with `eyJ`).
    fn derive(&self, purpose: &[u8], token: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(b"soulchat rotated ");
        mac.update(purpose);
        mac.update(b"\0");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
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

    fn issuer(secret: &str) -> Issuer {
        Issuer::new(&TokenConfig {
            jwt_secret: secret.into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            refresh_grace: Duration::from_secs(10),
        })
    }

    #[test]
    fn refresh_tokens_are_unique_and_hash_stably() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 64);
    }

    #[test]
    fn a_token_rotates_into_one_pair_that_only_the_key_predicts() {
        let (presented, _) = new_refresh_token();
        let (other, _) = new_refresh_token();
        let a = issuer("k1").rotated(&presented, "u", "f", 1_700_000_000_123).unwrap();
        let b = issuer("k1").rotated(&presented, "u", "f", 1_700_000_000_999).unwrap();
        assert_eq!((&a.access.token, &a.refresh_token), (&b.access.token, &b.refresh_token));
        assert_eq!(a.refresh_hash, hash_refresh_token(&a.refresh_token));
        assert_eq!(a.refresh_token.len(), presented.len());
        let c = issuer("k1").rotated(&other, "u", "f", 1_700_000_000_123).unwrap();
        let d = issuer("k2").rotated(&presented, "u", "f", 1_700_000_000_123).unwrap();
        for different in [&c, &d] {
            assert_ne!(different.refresh_token, a.refresh_token);
            assert_ne!(different.access.token, a.access.token);
        }
    }
}
