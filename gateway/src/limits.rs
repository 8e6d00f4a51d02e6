//! Attempt limits (login: per account and client address, and per address), as fixed windows.
//! With `REDIS_URL` the counters live in Redis and every gateway replica shares them; without it
//! each process counts on its own. A Redis outage fails open, loudly: an unavailable limiter
//! must not lock every user out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::ConnectionManager;
use soulchat_subjects::metrics::{self, Limit};

/// Failed logins are counted per (account, client address) and per address over all accounts,
/// never per account alone: failures from one address lock that address out of that account
/// (for the rest of the window, the right password included), while the user, from any other
/// address, still logs in. A stranger cannot lock a user out of their own device.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed logins allowed per account (email) from one client address in one window.
    pub per_account: u32,
    /// Failed logins allowed per client address, over all accounts, in one window.
    pub per_ip: u32,
    pub window: Duration,
}

impl LoginLimits {
    /// The counters (key, limit) a login for `email` from `address` is checked against, and
    /// counts in when it fails.
    pub fn counters(&self, email: &str, address: IpAddr) -> [(String, u32); 2] {
        let address = client_key(address);
        let account = email.trim().to_lowercase();
        [
            (format!("soulchat:limit:login:account:{address}:{account}"), self.per_account),
            (format!("soulchat:limit:login:ip:{address}"), self.per_ip),
        ]
    }
}

/// A client address as limits count it: IPv6 by its /64 (what one subscriber is handed, so
/// hopping within it is no way around a limit), an IPv4-mapped IPv6 address as IPv4.
pub fn client_key(address: IpAddr) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

#[derive(Clone)]
pub enum Limiter {
    Local(Arc<Mutex<HashMap<String, (u32, Instant)>>>),
    Redis(ConnectionManager),
}

/// Counts one hit and starts the window's clock on the first.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

/// Redis for the shared limits. Its outage must cost each request little, since the limits fail
/// open: a dead connection is retried once, connecting may take 1 s and answering 500 ms at most
/// (the client's defaults retry six times with backoff and wait for a connection without end,
/// which held every request for seconds while Redis was down).
pub(crate) async fn connect_redis(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("REDIS_URL {url:?}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    ConnectionManager::new_with_config(client, config).await.context("connecting to Redis")
}

impl Limiter {
    pub async fn connect(redis_url: Option<&str>) -> anyhow::Result<Limiter> {
        match redis_url {
            None => Ok(Limiter::Local(Arc::default())),
            Some(url) => Ok(Limiter::Redis(connect_redis(url).await?)),
        }
    }

    /// `Some(wait)` when `key` has used up `limit` in its current window.
    pub async fn blocked(&self, key: &str, limit: u32) -> Option<Duration> {
        match self {
            Limiter::Local(windows) => {
                let windows = windows.lock().unwrap_or_else(|p| p.into_inner());
                let (count, ends) = windows.get(key)?;
                let now = Instant::now();
                (*count >= limit && *ends > now).then(|| *ends - now)
            }
            Limiter::Redis(conn) => {
                let mut conn = conn.clone();
                let result: redis::RedisResult<(Option<u32>, i64)> =
                    redis::pipe().get(key).pttl(key).query_async(&mut conn).await;
                match result {
                    Ok((Some(count), ttl)) if count >= limit && ttl > 0 => Some(Duration::from_millis(ttl as u64)),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!("rate limiter unavailable, allowing: {e}");
                        None
                    }
                }
            }
        }
    }

    /// Counts an attempt against `key`.
    pub async fn hit(&self, key: &str, window: Duration) {
        match self {
            Limiter::Local(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if windows.len() > 100_000 {
                    windows.retain(|_, (_, ends)| *ends > now);
                }
                let entry = windows.entry(key.to_owned()).or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 += 1;
            }
            Limiter::Redis(conn) => {
                let mut conn = conn.clone();
                let result: redis::RedisResult<i64> =
                    redis::Script::new(HIT).key(key).arg(window.as_millis() as u64).invoke_async(&mut conn).await;
                if let Err(e) = result {
                    tracing::warn!("rate limiter unavailable: {e}");
                }
            }
        }
    }
}

/// Messages one user may send per second, over REST and WebSocket together (429 beyond).
#[derive(Clone)]
pub struct SendLimit {
    limiter: Limiter,
    per_second: u32,
}

impl SendLimit {
    pub fn new(limiter: Limiter, per_second: u32) -> Self {
        SendLimit { limiter, per_second }
    }

    pub async fn check(&self, user_id: &str) -> Result<(), soulchat_subjects::ServiceError> {
        let key = format!("soulchat:limit:send:{user_id}");
        if let Some(wait) = self.limiter.blocked(&key, self.per_second).await {
            metrics::limit_refused(Limit::Send);
            return Err(soulchat_subjects::ServiceError::too_many("message", wait));
        }
        self.limiter.hit(&key, Duration::from_secs(1)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn no_login_counter_is_per_account_alone() {
        let limits = LoginLimits { per_account: 10, per_ip: 100, window: Duration::from_secs(60) };
        let from_a = limits.counters("Judy@Example.com ", "192.0.2.1".parse().unwrap());
        let from_b = limits.counters("judy@example.com", "192.0.2.2".parse().unwrap());
        assert!(from_a.iter().all(|a| from_b.iter().all(|b| a.0 != b.0)), "{from_a:?} {from_b:?}");
        let other_account = limits.counters("ken@example.com", "192.0.2.1".parse().unwrap());
        assert_ne!(from_a[0].0, other_account[0].0);
        assert_eq!(from_a[1], other_account[1], "the address counts over all accounts");
    }
}
