//! The Redis profile cache, keyed by lowercased username.
//!
//! Writers store the committed row with its version; a write never replaces an entry of equal
//! or newer version (a Lua check-and-set). So a reader that fetched an old row before an update
//! cannot put it back after the update's own cache write, and after an update returns every
//! reader sees it or something newer. A rename leaves a versioned tombstone under the old name.
//! `following` depends on the viewer and is never cached.
//!
//! In front of Redis (or of the database, without Redis) each process keeps the answers of the
//! last [`NEAR_TTL`]: a popular profile is read far more often than it changes, and a read
//! from memory costs no round trip at all. The same version rule applies there, and this
//! process's own writes replace its copies at once; another replica's write shows here within
//! [`NEAR_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message;
use redis::aio::ConnectionManager;
use soulchat_subjects::metrics;
use soulchat_subjects::profile::messages::Profile;

use crate::store::ProfileRow;

const TTL: Duration = Duration::from_secs(600);
/// This cache's name in the metrics.
const CACHE: &str = "profile";
/// How long this process answers from its own copy.
pub const NEAR_TTL: Duration = Duration::from_secs(1);
/// Copies kept at most; beyond it the expired ones go.
const NEAR_MAX: usize = 50_000;

const SET_IF_NEWER: &str = r"
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

pub struct Cache {
    redis: Option<ConnectionManager>,
    /// Lowercased username -> this process's copy.
    near: Mutex<HashMap<String, NearCopy>>,
    script: redis::Script,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// (version, the row or `None` for a tombstone, when it was stored).
type NearCopy = (i64, Option<ProfileRow>, Instant);

/// What the cache knows about a name.
pub enum Cached {
    Found(ProfileRow),
    /// A tombstone: the name was renamed away or deleted.
    Gone,
    Unknown,
}

fn key(username: &str) -> String {
    format!("soulchat:profile:{}", near_key(username))
}

fn near_key(username: &str) -> String {
    username.trim().to_lowercase()
}

impl Cache {
    pub async fn connect(url: Option<&str>) -> anyhow::Result<Cache> {
        let redis = match url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url).with_context(|| format!("REDIS_URL {url:?}"))?;
                // A cache outage must cost a read little (it falls back to the database): one
                // retry, 1 s at most to connect and 500 ms to answer (the client's defaults retry six
                // times with backoff and wait for a connection without end).
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
                    .set_response_timeout(Some(std::time::Duration::from_millis(500)));
                Some(ConnectionManager::new_with_config(client, config).await.context("connecting to Redis")?)
            }
        };
        metrics::zero::cache(CACHE);
        Ok(Cache {
            redis,
            near: Mutex::default(),
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
        if let Some(cached) = self.near_get(username) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            metrics::cache_looked_up(CACHE, true);
            return cached;
        }
        let Some(redis) = &self.redis else { return Cached::Unknown };
        let mut conn = redis.clone();
        let found: redis::RedisResult<(Option<i64>, Option<Vec<u8>>)> =
            redis::cmd("HMGET").arg(key(username)).arg("v").arg("d").query_async(&mut conn).await;
        let cached = match found {
            Ok((Some(version), Some(data))) if data.is_empty() => {
                self.near_set(username, version, None);
                Cached::Gone
            }
            Ok((Some(version), Some(data))) => match Profile::decode(data.as_slice()) {
                Ok(p) => {
                    let row = ProfileRow {
                        user_id: p.user_id,
                        username: p.username,
                        bio: p.bio,
                        image: p.image,
                        followers_count: p.followers_count,
                        following_count: p.following_count,
                        version,
                    };
                    self.near_set(username, version, Some(row.clone()));
                    Cached::Found(row)
                }
                Err(_) => Cached::Unknown,
            },
            Ok(_) => Cached::Unknown,
            Err(e) => {
                tracing::warn!("profile cache read: {e}");
                Cached::Unknown
            }
        };
        let hit = !matches!(cached, Cached::Unknown);
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::cache_looked_up(CACHE, hit);
        cached
    }

    /// Stores a committed row unless the cache already holds this version or a newer one.
    pub async fn put(&self, row: &ProfileRow) {
        self.near_set(&row.username, row.version, Some(row.clone()));
        self.set(&row.username, row.version, row.to_profile(false).encode_to_vec()).await;
    }

    /// Marks `username` as no longer pointing at the profile of `version`.
    pub async fn tombstone(&self, username: &str, version: i64) {
        self.near_set(username, version, None);
        self.set(username, version, Vec::new()).await;
    }

    fn near_get(&self, username: &str) -> Option<Cached> {
        let near = self.near.lock().unwrap_or_else(|p| p.into_inner());
        match near.get(&near_key(username)) {
            Some((_, row, at)) if at.elapsed() < NEAR_TTL => Some(row.clone().map_or(Cached::Gone, Cached::Found)),
            _ => None,
        }
    }

    /// Keeps a copy unless a newer version is already here.
    fn near_set(&self, username: &str, version: i64, row: Option<ProfileRow>) {
        let mut near = self.near.lock().unwrap_or_else(|p| p.into_inner());
        if near.len() >= NEAR_MAX {
            near.retain(|_, (_, _, at)| at.elapsed() < NEAR_TTL);
        }
        let key = near_key(username);
        if near.get(&key).is_some_and(|(newest, _, at)| *newest > version && at.elapsed() < NEAR_TTL) {
            return;
        }
        near.insert(key, (version, row, Instant::now()));
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
