//! Password hashing: argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), in a bounded
//! pool: a few hashes run at once on the blocking threads (one per core by default), a short
//! queue waits for them, and anything beyond is refused at once with 503 and `Retry-After`.
//! Refusing early is what keeps a burst harmless: every caller hashes before it writes, so a
//! refused registration leaves nothing behind, and nothing waits long enough for the caller's
//! deadline to pass while the work still goes on (which once answered 503 for accounts that
//! were in fact created).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use soulchat_runtime::Result;
use soulchat_subjects::{ErrorCode, ServiceError};
use tokio::sync::Semaphore;

/// The size of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPool {
    /// Hashes computed at once; `None`: one per core.
    pub workers: Option<usize>,
    /// Hashes that may wait for a worker; beyond them a request is refused.
    pub queue: usize,
}

impl Default for HashPool {
    fn default() -> Self {
        HashPool { workers: None, queue: 16 }
    }
}

/// How long a queued hash may wait for a worker before it is refused after all: the caller's
/// deadline must still cover the hash and the writes that follow it.
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// What a refused caller is told to wait: a few hash durations, rounded up to the header's unit.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Hasher {
    /// Held from admission to the end of the hash: workers plus queue.
    admitted: Arc<Semaphore>,
    /// Held while hashing.
    running: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that case costs the same as a wrong password.
    decoy: String,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Hasher {
    pub fn new(pool: HashPool) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = pool.workers.unwrap_or(cores).max(1);
        let decoy = argon2()
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hashing the decoy password")
            .to_string();
        Hasher {
            admitted: Arc::new(Semaphore::new(workers + pool.queue)),
            running: Arc::new(Semaphore::new(workers)),
            decoy,
        }
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
        let _admitted = self.admitted.clone().try_acquire_owned().map_err(|_| busy())?;
        let _running = match tokio::time::timeout(QUEUE_WAIT, self.running.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(busy().into()),
        };
        Ok(tokio::task::spawn_blocking(f).await.context("password hashing task")?)
    }
}

/// 503 with `Retry-After`: every hashing slot is taken.
fn busy() -> ServiceError {
    tracing::warn!("password hashing pool full; refusing");
    let mut e = ServiceError::new(ErrorCode::Unavailable, "service", "is busy, try again shortly");
    e.retry_after = Some(RETRY_AFTER);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_workers_and_queue_callers_are_refused_at_once() {
        let hasher = Arc::new(Hasher::new(HashPool { workers: Some(1), queue: 1 }));
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("a long enough password".into()).await })
            })
            .collect();
        let mut refused = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(hash) => assert!(hash.starts_with("$argon2id$")),
                Err(soulchat_runtime::Error::Refused(e)) => {
                    assert_eq!((e.code, e.retry_after), (ErrorCode::Unavailable, Some(RETRY_AFTER)));
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!((1..=4).contains(&refused), "{refused} of 6 refused with one worker and a queue of one");
        // Slots come back: a later caller is served.
        assert!(hasher.verify("x".into(), None).await.is_ok());
    }
}
