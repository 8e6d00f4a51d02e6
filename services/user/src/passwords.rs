//! Password hashing: argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), run on the
//! blocking pool behind one permit per core so a burst of logins cannot starve the async
//! threads or exhaust memory.

use std::sync::Arc;

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use soulchat_runtime::Result;
use soulchat_subjects::ServiceError;
use tokio::sync::Semaphore;

pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that case costs the same as a wrong password.
    decoy: String,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Hasher {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decoy = argon2()
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hashing the decoy password")
            .to_string();
        Hasher { permits: Arc::new(Semaphore::new(cores)), decoy }
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        let hashed = self
            .blocking(move || {
                argon2().hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng)).map(|h| h.to_string())
            })
            .await?;
        Ok(hashed.context("hashing a password")?)
    }

    /// Whether `password` matches `hash`; with `None` (unknown account) it checks the decoy and
    /// answers `false`, taking the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.clone());
        let matches = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .is_ok_and(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| ServiceError::unavailable())?;
        Ok(tokio::task::spawn_blocking(f).await.context("password hashing task")?)
    }
}
