//! Writes revocations to the `soulchat_revoked` bucket, which every gateway replica watches.
//! A revocation must be visible before the operation that caused it answers, so callers await it.

use async_nats::jetstream::{self, kv};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{ServiceError, streams};

pub struct Revocations {
    bucket: kv::Store,
}

impl Revocations {
    pub async fn open(js: &jetstream::Context) -> anyhow::Result<Self> {
        Ok(Revocations { bucket: js.get_key_value(streams::REVOKED_BUCKET).await? })
    }

    /// Revokes one access token until its expiry.
    pub async fn token(&self, jti: &str, expires_at_ms: i64) -> Result<(), ServiceError> {
        self.put(streams::revoked_token_key(jti), expires_at_ms).await
    }

    /// Revokes a refresh family and every access token issued from it.
    pub async fn family(&self, family: &str) -> Result<(), ServiceError> {
        self.put(streams::revoked_family_key(family), now_ms()).await
    }

    async fn put(&self, key: String, value: i64) -> Result<(), ServiceError> {
        self.bucket.put(&key, value.to_string().into()).await.map_err(|e| {
            tracing::error!(%key, "writing a revocation: {e}");
            ServiceError::unavailable()
        })?;
        Ok(())
    }
}
