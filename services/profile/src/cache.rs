//! The Redis profile cache, keyed by lowercased username.
//!
//! Writers store the committed row with its version; a write never replaces an entry of equal
//! or newer version (a Lua check-and-set). So a reader that fetched an old row before an update
//! cannot put it back after the update's own cache write, and after an update returns every
//! reader sees it or something newer. A rename leaves a versioned tombstone under the old name.
//! `following` depends on the viewer and is never cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use prost::Message;
use redis::aio::ConnectionManager;
use soulchat_subjects::profile::messages::Profile;

use crate::store::ProfileRow;

const TTL: Duration = Duration::from_secs(600);

const SET_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

pub struct Cache {
    redis: Option<ConnectionManager>,
    script: redis::Script,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the cache knows about a name.
pub enum Cached {
    Found(ProfileRow),
    /// A tombstone: the name was renamed away or deleted.
    Gone,
    Unknown,
}

fn key(username: &str) -> String {
    format!("soulchat:profile:{}", username.trim().to_lowercase())
}

impl Cache {
    pub async fn connect(url: Option<&str>) -> anyhow::Result<Cache> {
        let redis = match url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url).with_context(|| format!("REDIS_URL {url:?}"))?;
                Some(ConnectionManager::new(client).await.context("connecting to Redis")?)
            }
        };
        Ok(Cache {
            redis,
            script: redis::Script::new(SET_IF_NEWER),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "cache": if self.redis.is_some() { "redis" } else { "off" },
            "cache_hits": self.hits.load(Ordering::Relaxed),
            "cache_misses": self.misses.load(Ordering::Relaxed),
        })
    }

    pub async fn get(&self, username: &str) -> Cached {
        let Some(redis) = &self.redis else { return Cached::Unknown };
        let mut conn = redis.clone();
        let found: redis::RedisResult<(Option<i64>, Option<Vec<u8>>)> =
            redis::cmd("HMGET").arg(key(username)).arg("v").arg("d").query_async(&mut conn).await;
        let cached = match found {
            Ok((Some(version), Some(data))) if data.is_empty() => {
                let _ = version;
                Cached::Gone
            }
            Ok((Some(version), Some(data))) => match Profile::decode(data.as_slice()) {
                Ok(p) => Cached::Found(ProfileRow {
                    user_id: p.user_id,
                    username: p.username,
                    bio: p.bio,
                    image: p.image,
                    followers_count: p.followers_count,
                    following_count: p.following_count,
                    version,
                }),
                Err(_) => Cached::Unknown,
            },
            Ok(_) => Cached::Unknown,
            Err(e) => {
                tracing::warn!("profile cache read: {e}");
                Cached::Unknown
            }
        };
        let counter = if matches!(cached, Cached::Unknown) { &self.misses } else { &self.hits };
        counter.fetch_add(1, Ordering::Relaxed);
        cached
    }

    /// Stores a committed row unless the cache already holds this version or a newer one.
    pub async fn put(&self, row: &ProfileRow) {
        self.set(&row.username, row.version, row.to_profile(false).encode_to_vec()).await;
    }

    /// Marks `username` as no longer pointing at the profile of `version`.
    pub async fn tombstone(&self, username: &str, version: i64) {
        self.set(username, version, Vec::new()).await;
    }

    async fn set(&self, username: &str, version: i64, data: Vec<u8>) {
        let Some(redis) = &self.redis else { return };
        let mut conn = redis.clone();
        let written: redis::RedisResult<i64> = self
            .script
            .key(key(username))
            .arg(version)
            .arg(data)
            .arg(TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = written {
            // Never leave a stale entry behind a failed write.
            tracing::warn!("profile cache write: {e}; evicting");
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key(username)).query_async(&mut conn).await;
        }
    }
}
