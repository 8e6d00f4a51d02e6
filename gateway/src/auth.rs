//! Authentication extractors. `AuthUser` requires a valid, unrevoked access token from
//! `Authorization: Token <jwt>` (or `Bearer`) and is checked before anything else in a handler;
//! `MaybeUser` accepts anonymous callers.
//!
//! The extractors need only the [`Verifier`] (any router state `S` with `Arc<Verifier>:
//! FromRef<S>`), not the rest of the gateway: no hub, no worker calls.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use soulchat_subjects::ServiceError;
use soulchat_subjects::auth::AccessClaims;

use crate::error::ApiError;
use crate::revocations::Revocations;

/// Checks access tokens: signature, expiry, and the revocations this gateway has seen.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    revocations: Revocations,
}

impl Verifier {
    pub fn new(secret: &str, revocations: Revocations) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Verifier { key: DecodingKey::from_secret(secret.as_bytes()), validation, revocations }
    }

    /// The claims of a valid, unrevoked token.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ServiceError> {
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ServiceError::unauthorized("token", "has expired"),
                _ => ServiceError::unauthorized("token", "is invalid"),
            })?
            .claims;
        if self.is_revoked(&claims) {
            return Err(ServiceError::unauthorized("token", "has been revoked"));
        }
        Ok(claims)
    }

    /// Whether a token verified earlier (an open socket's) has been revoked since.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        self.revocations.is_revoked(&claims.jti, &claims.fam)
    }

    /// Waits until the revocations written so far apply here: called after an operation that
    /// revokes, so that the next request is refused at once.
    pub async fn sync_revocations(&self) {
        self.revocations.sync().await;
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: AccessClaims,
    /// The presented token, echoed back where RealWorld wants it.
    pub token: String,
}

impl AuthUser {
    pub fn id(&self) -> &str {
        &self.claims.sub
    }
}

/// The token in the Authorization header, if any.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ServiceError::unauthorized("token", "is invalid"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) || token.trim().is_empty() {
        return Err(ServiceError::unauthorized("token", "is invalid"));
    }
    Ok(Some(token.trim().to_owned()))
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The edge's rate limiter verified the token already, to find the user's bucket.
        if let Some(auth) = parts.extensions.get::<AuthUser>() {
            return Ok(auth.clone());
        }
        let token = bearer(&parts.headers)?.ok_or_else(|| ServiceError::unauthorized("token", "is missing"))?;
        let claims = Arc::<Verifier>::from_ref(state).verify(&token)?;
        Ok(AuthUser { claims, token })
    }
}

/// A caller who may be anonymous; a token that is present must still be valid.
pub struct MaybeUser(pub Option<AuthUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser
where
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.extensions.get::<AuthUser>() {
            return Ok(MaybeUser(Some(auth.clone())));
        }
        match bearer(&parts.headers)? {
            None => Ok(MaybeUser(None)),
            Some(token) => {
                let claims = Arc::<Verifier>::from_ref(state).verify(&token)?;
                Ok(MaybeUser(Some(AuthUser { claims, token })))
            }
        }
    }
}
