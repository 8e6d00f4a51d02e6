//! Edge rate limits: token buckets per client address and per user on every route, and a
//! stricter one per address for the routes that create accounts or send mail (registration,
//! password reset). Beyond a bucket: 429 `{"errors":{"rate":["too many requests"]}}` with
//! `Retry-After` (the middleware that draws from them is `routes::edge`).
//!
//! Without `REDIS_URL` the buckets are governor's, in this process; with it they live in Redis
//! (the same GCRA, in one Lua script on Redis's clock) so every gateway replica shares them.
//! A Redis outage fails open, loudly: an unavailable limiter must not refuse every request.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

/// A token bucket: `count` tokens per `per`, holding at most `burst`. Written `100/s`,
/// `100/s:400` (a burst of 400), `5/m:20` or `1000/h` (s, m, h); the burst defaults to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
    pub burst: NonZeroU32,
}

impl Rate {
    /// The time one token takes to come back.
    fn interval(&self) -> Duration {
        (self.per / self.count.get()).max(Duration::from_nanos(1))
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.interval()).expect("a positive interval").allow_burst(self.burst)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid = || format!("{s:?} is not a rate such as 100/s, 100/s:400, 5/m:20 or 1000/h");
        let (rate, burst) = s.trim().split_once(':').map_or((s.trim(), None), |(r, b)| (r, Some(b)));
        let (count, unit) = rate.split_once('/').ok_or_else(invalid)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| invalid())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        let burst = match burst {
            None => count,
            Some(b) => b.trim().parse().map_err(|_| invalid())?,
        };
        Ok(Rate { count, per, burst })
    }
}

/// The edge's limits.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Requests per client address, every route but the health probes.
    pub per_address: Rate,
    /// Requests per user (a valid access token), every route.
    pub per_user: Rate,
    /// Registrations and password resets per client address, on top of the above.
    pub accounts: Rate,
}

/// One draw from a bucket: which, and whose.
#[derive(Debug, Clone, Copy)]
pub enum Draw<'a> {
    /// A client address, as `limits::client_key` writes it.
    Address(&'a str),
    User(&'a str),
    Accounts(&'a str),
}

/// One GCRA step on Redis's clock, in microseconds: 0 when a token was taken, otherwise how
/// long until one is there. The key holds the bucket's "theoretical arrival time" and expires
/// when the bucket is full again.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local tat = stored and tonumber(stored) or now
if tat < now then tat = now end
local allowed_at = tat - (burst - 1) * interval
if now < allowed_at then return math.ceil(allowed_at - now) end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 0";

#[derive(Clone)]
pub struct RateLimiter {
    limits: Arc<RateLimits>,
    store: Store,
}

#[derive(Clone)]
enum Store {
    Local(Arc<Local>),
    Redis(ConnectionManager, Arc<redis::Script>),
}

struct Local {
    address: DefaultKeyedRateLimiter<String>,
    user: DefaultKeyedRateLimiter<String>,
    accounts: DefaultKeyedRateLimiter<String>,
}

impl RateLimiter {
    /// In this process, or shared through Redis when `redis_url` is set. Local buckets that
    /// are full again are forgotten every minute, until `shutdown`.
    pub async fn connect(
        limits: RateLimits,
        redis_url: Option<&str>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<RateLimiter> {
        let store = match redis_url {
            Some(url) => Store::Redis(crate::limits::connect_redis(url).await?, Arc::new(redis::Script::new(TAKE))),
            None => {
                let local = Arc::new(Local {
                    address: DefaultKeyedRateLimiter::keyed(limits.per_address.quota()),
                    user: DefaultKeyedRateLimiter::keyed(limits.per_user.quota()),
                    accounts: DefaultKeyedRateLimiter::keyed(limits.accounts.quota()),
                });
                let weak = Arc::downgrade(&local);
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(60));
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = every.tick() => {}
                        }
                        let Some(local) = weak.upgrade() else { break };
                        local.address.retain_recent();
                        local.user.retain_recent();
                        local.accounts.retain_recent();
                        local.address.shrink_to_fit();
                        local.user.shrink_to_fit();
                        local.accounts.shrink_to_fit();
                    }
                });
                Store::Local(local)
            }
        };
        Ok(RateLimiter { limits: Arc::new(limits), store })
    }

    /// Takes one token from the bucket drawn from; `Err(wait)` when there is none.
    pub async fn take(&self, draw: Draw<'_>) -> Result<(), Duration> {
        match &self.store {
            Store::Local(local) => {
                let outcome = match draw {
                    Draw::Address(address) => local.address.check_key(&address.to_owned()),
                    Draw::User(id) => local.user.check_key(&id.to_owned()),
                    Draw::Accounts(address) => local.accounts.check_key(&address.to_owned()),
                };
                outcome.map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
            }
            Store::Redis(conn, script) => {
                let (rate, key) = match draw {
                    Draw::Address(address) => (self.limits.per_address, format!("soulchat:rate:address:{address}")),
                    Draw::User(id) => (self.limits.per_user, format!("soulchat:rate:user:{id}")),
                    Draw::Accounts(address) => (self.limits.accounts, format!("soulchat:rate:accounts:{address}")),
                };
                let mut conn = conn.clone();
                let result: redis::RedisResult<u64> = script
                    .key(key)
                    .arg(rate.interval().as_micros() as u64)
                    .arg(rate.burst.get())
                    .invoke_async(&mut conn)
                    .await;
                match result {
                    Ok(0) => Ok(()),
                    Ok(wait) => Err(Duration::from_micros(wait)),
                    Err(e) => {
                        tracing::warn!("rate limiter unavailable, allowing: {e}");
                        Ok(())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_and_without_a_burst() {
        let r: Rate = "100/s:400".parse().unwrap();
        assert_eq!((r.count.get(), r.per, r.burst.get()), (100, Duration::from_secs(1), 400));
        assert_eq!(r.interval(), Duration::from_millis(10));
        let r: Rate = "5/m".parse().unwrap();
        assert_eq!((r.per, r.burst.get()), (Duration::from_secs(60), 5));
        for bad in ["", "0/s", "5", "5/d", "5/s:0", "x/s", "5/s:x"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_local_bucket_refuses_beyond_its_burst_and_says_how_long_to_wait() {
        let rate: Rate = "1/m:3".parse().unwrap();
        let limits = RateLimits { per_address: rate, per_user: rate, accounts: rate };
        let limiter = RateLimiter::connect(limits, None, CancellationToken::new()).await.unwrap();
        let ip = "192.0.2.1";
        for _ in 0..3 {
            limiter.take(Draw::Address(ip)).await.unwrap();
        }
        let wait = limiter.take(Draw::Address(ip)).await.unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        // Other buckets and other keys are untouched.
        limiter.take(Draw::Accounts(ip)).await.unwrap();
        limiter.take(Draw::Address("192.0.2.2")).await.unwrap();
        limiter.take(Draw::User("u1")).await.unwrap();
    }
}
