//! The gateway's view of revoked tokens: a local copy of the `soulchat_revoked` bucket, kept
//! current by a KV watch, so checking a token costs no round trip. After an operation that
//! revokes (logout, refresh reuse, password change, account deletion) the gateway calls
//! [`Revocations::sync`], which waits until the copy has caught up with the bucket: the next
//! request is refused on this replica at once, and on others within the watch's latency.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use soulchat_subjects::streams;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    /// Key (`jti.<id>` / `fam.<id>`) -> a millisecond timestamp (expiry or revocation time).
    revoked: RwLock<HashMap<String, i64>>,
    /// The last bucket revision applied.
    applied: watch::Sender<u64>,
    js: jetstream::Context,
}

impl Revocations {
    /// Loads the bucket and keeps following it.
    pub async fn watch(js: &jetstream::Context) -> anyhow::Result<Revocations> {
        let bucket = js.get_key_value(streams::REVOKED_BUCKET).await?;
        let (applied, _) = watch::channel(0);
        let inner = Arc::new(Inner { revoked: RwLock::new(HashMap::new()), applied, js: js.clone() });
        tokio::spawn(follow(bucket, Arc::downgrade(&inner)));
        let revocations = Revocations { inner };
        revocations.sync().await;
        Ok(revocations)
    }

    pub fn is_revoked(&self, jti: &str, family: &str) -> bool {
        let revoked = self.inner.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.contains_key(&streams::revoked_token_key(jti))
            || revoked.contains_key(&streams::revoked_family_key(family))
    }

    /// Waits (at most 2 s) until every revocation written so far is applied here.
    pub async fn sync(&self) {
        let stream = format!("KV_{}", streams::REVOKED_BUCKET);
        let target = match self.inner.js.get_stream(&stream).await {
            Ok(mut s) => match s.info().await {
                Ok(info) => info.state.last_sequence,
                Err(e) => return tracing::warn!("reading {stream}: {e}"),
            },
            Err(e) => return tracing::warn!("reading {stream}: {e}"),
        };
        let mut applied = self.inner.applied.subscribe();
        let caught_up = applied.wait_for(|rev| *rev >= target);
        if tokio::time::timeout(Duration::from_secs(2), caught_up).await.is_err() {
            tracing::warn!(target, "revocation watch is lagging");
        }
    }
}

/// Applies bucket changes until the gateway goes away, re-watching after any interruption.
async fn follow(bucket: kv::Store, inner: std::sync::Weak<Inner>) {
    let mut next = 1;
    loop {
        match bucket.watch_all_from_revision(next).await {
            Ok(mut changes) => {
                while let Some(change) = changes.next().await {
                    let Some(inner) = inner.upgrade() else { return };
                    match change {
                        Ok(entry) => {
                            next = entry.revision + 1;
                            apply(&inner, entry);
                        }
                        Err(e) => {
                            tracing::warn!("revocation watch: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("starting the revocation watch: {e}"),
        }
        if inner.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn apply(inner: &Inner, entry: kv::Entry) {
    {
        let mut revoked = inner.revoked.write().unwrap_or_else(|p| p.into_inner());
        match entry.operation {
            kv::Operation::Put => {
                let at = std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                revoked.insert(entry.key, at);
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                revoked.remove(&entry.key);
            }
        }
        // Token entries are useless once the token has expired anyway.
        if entry.revision.is_multiple_of(1024) {
            let now = soulchat_subjects::time::now_ms();
            revoked.retain(|key, at| !key.starts_with("jti.") || *at > now);
        }
    }
    inner.applied.send_replace(entry.revision);
}
