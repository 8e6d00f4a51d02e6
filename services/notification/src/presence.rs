//! Who has a live socket, as the gateways record it in `soulchat_presence`, kept in memory from a
//! watch of the bucket. Every chat message asks whether its recipients are online; asking the
//! bucket each time would cost a NATS round trip per recipient per message, while presence
//! changes seldom by comparison.
//!
//! The bucket's TTL ends the entries of a gateway that died, but a watch is not told when an
//! entry ages out, so an entry counts only while it is younger than the TTL (online users' entries
//! are refreshed well within it). Until the watch has caught up, or while it is down, users count
//! as offline: a notification too many beats a missed one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures::StreamExt;
use soulchat_subjects::streams::PRESENCE_TTL;
use soulchat_subjects::time::now_ms;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct OnlineUsers {
    /// User id -> when the entry saying "online" was written (Unix ms).
    online_since: Arc<Mutex<HashMap<String, i64>>>,
}

impl OnlineUsers {
    /// Follows the bucket until `shutdown`, re-watching after any interruption.
    pub fn watch(bucket: kv::Store, shutdown: CancellationToken) -> (OnlineUsers, tokio::task::JoinHandle<()>) {
        let users = OnlineUsers::default();
        let watcher = users.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    result = watcher.follow(&bucket) => {
                        if let Err(e) = result {
                            tracing::warn!("presence watch: {e:#}; watching again");
                        }
                    }
                    _ = shutdown.cancelled() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
        (users, task)
    }

    pub fn is_online(&self, user_id: &str) -> bool {
        let online_since = self.online_since.lock().unwrap_or_else(|p| p.into_inner());
        online_since.get(user_id).is_some_and(|at| fresh(*at, now_ms()))
    }

    async fn follow(&self, bucket: &kv::Store) -> anyhow::Result<()> {
        // The history brings every current entry first, so a re-watch starts from a clean slate.
        let mut entries = bucket.watch_with_history(">").await?;
        self.online_since.lock().unwrap_or_else(|p| p.into_inner()).clear();
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            let online = entry.operation == Operation::Put && says_online(&entry.value);
            let mut online_since = self.online_since.lock().unwrap_or_else(|p| p.into_inner());
            if online {
                online_since.insert(entry.key, (entry.created.unix_timestamp_nanos() / 1_000_000) as i64);
            } else {
                online_since.remove(&entry.key);
            }
            if online_since.len() > 10_000 && entry.delta == 0 {
                let now = now_ms();
                online_since.retain(|_, at| fresh(*at, now));
            }
        }
        Ok(())
    }
}

fn fresh(written_ms: i64, now_ms: i64) -> bool {
    now_ms - written_ms < PRESENCE_TTL.as_millis() as i64
}

/// The gateways write `{"status": "online" | "offline", "last_seen_ms": …}`.
fn says_online(value: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        status: &'a str,
    }
    serde_json::from_slice::<Entry>(value).is_ok_and(|e| e.status == "online")
}
