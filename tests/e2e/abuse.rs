//! An edge that holds under abuse: a burst of registrations against a small argon2 pool,
//! failed logins from a stranger, parallel refreshes of one token, and addresses and usernames
//! that only look like ones.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Options, Role, each_backend};

use crate::{PASSWORD, token};

each_backend!(parallel_refreshes_share_one_rotation, replaying_after_moving_on_revokes_within_the_grace);

/// A client connecting from its own loopback address (Linux answers all of 127/8), so the
/// gateway sees distinct client addresses without trusting any header. Random per test, since
/// counters in Redis outlive a test.
struct Client {
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn error(&self, field: &str) -> Option<&str> {
        self.body["errors"][field][0].as_str()
    }

    fn retry_after(&self) -> Option<u64> {
        self.headers.get("retry-after")?.to_str().ok()?.parse().ok()
    }
}

impl Client {
    fn from_random_address(base: &str) -> Client {
        let [a, b, c, ..] = *uuid::Uuid::new_v4().as_bytes();
        let address = IpAddr::V4(Ipv4Addr::new(127, a, b, c.clamp(2, 254)));
        let http = reqwest::Client::builder()
            .local_address(address)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        Client { http, base: base.to_owned() }
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        self.post("/api/users/login", json!({"user": {"email": email, "password": password}})).await
    }

    async fn register(&self, username: &str) -> Answer {
        let user = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
        self.post("/api/users", json!({ "user": user })).await
    }
}

/// A name no other run shares (Redis outlives the test).
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_argon2_pool_refuses_registrations_before_writing() {
    let mut options = Options::new(Backend::Sqlite);
    options.password_hashing = soulchat_user::HashPool { workers: Some(1), queue: 1 };
    let mesh = Mesh::start_with(options).await;
    let names: Vec<String> = (0..24).map(|i| format!("burst{i}")).collect();
    let attempts: Vec<_> = names
        .iter()
        .map(|name| {
            let client = Client::from_random_address(&mesh.api.base);
            let name = name.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = client.register(&name).await;
                (name, answer, started.elapsed())
            })
        })
        .collect();
    let mut created = BTreeSet::new();
    let mut refused = Vec::new();
    for attempt in attempts {
        let (name, answer, took) = attempt.await.unwrap();
        match answer.status {
            201 => {
                created.insert(name);
            }
            503 => {
                // Refused at once, with a hint, before the caller's deadline (2 s) could pass.
                assert!(answer.retry_after().is_some_and(|s| (1..=5).contains(&s)), "{:?}", answer.headers);
                assert_eq!(answer.error("service"), Some("is busy, try again shortly"));
                assert!(took < Duration::from_millis(1900), "{name} refused only after {took:?}");
                refused.push(name);
            }
            other => panic!("{name}: {other} {:?}", answer.body),
        }
    }
    assert!(!refused.is_empty(), "24 registrations at once never filled a pool of one worker and one slot");
    assert!(!created.is_empty(), "the pool served no one");

    // Exactly the answered registrations hold an account: a refusal wrote nothing.
    let accounts: BTreeSet<String> = mesh.strings(Role::User, "SELECT username FROM users").await.into_iter().collect();
    assert_eq!(accounts, created);

    // A client that retries is served, never told its name is taken.
    let client = Client::from_random_address(&mesh.api.base);
    for name in &refused {
        let mut answer = client.register(name).await;
        for _ in 0..20 {
            if answer.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(answer.retry_after().unwrap_or(1))).await;
            answer = client.register(name).await;
        }
        assert_eq!(answer.status, 201, "retrying {name}: {:?}", answer.body);
    }
    // And every account answered with 201 is a working one.
    for name in names {
        let login = client.login(&format!("{name}@example.com"), PASSWORD).await;
        assert_eq!(login.status, 200, "{name}: {:?}", login.body);
    }
    mesh.shutdown().await;
}

/// Failures from address A lock A out of the account (the right password included) until the
/// window ends; B logs in all along; an address that fails across accounts is stopped too.
async fn stranger_cannot_lock_out(redis_url: Option<String>) {
    let mut options = Options::new(Backend::Sqlite);
    options.login_limits.per_account = 3;
    options.login_limits.per_ip = 5;
    options.login_limits.window = Duration::from_secs(3);
    options.redis_url = redis_url;
    let mesh = Mesh::start_with(options).await;
    let (stranger, owner, sprayer) = (
        Client::from_random_address(&mesh.api.base),
        Client::from_random_address(&mesh.api.base),
        Client::from_random_address(&mesh.api.base),
    );
    let (judy, ken) = (unique("judy"), unique("ken"));
    for name in [&judy, &ken] {
        assert_eq!(owner.register(name).await.status, 201);
    }
    let (judy, ken) = (format!("{judy}@example.com"), format!("{ken}@example.com"));

    for _ in 0..3 {
        assert_eq!(stranger.login(&judy, "wrong password").await.status, 401);
    }
    let locked = stranger.login(&judy, PASSWORD).await;
    assert_eq!((locked.status, locked.error("login")), (429, Some("too many attempts")), "{:?}", locked.body);
    assert!(mesh.metric(r#"soulchat_limit_refusals_total{limit="login"}"#).await >= 1.0);
    assert!(locked.retry_after().is_some_and(|s| (1..=3).contains(&s)), "{:?}", locked.headers);
    // The owner, from their own address, is not locked out; their own typo counts for them alone.
    assert_eq!(owner.login(&judy, "wrong password").await.status, 401);
    assert_eq!(owner.login(&judy, PASSWORD).await.status, 200);
    // Another account from the stranger's address is not locked (below the address's limit).
    assert_eq!(stranger.login(&ken, PASSWORD).await.status, 200);

    // Spraying across accounts from one address meets the address's limit.
    for email in [&judy, &judy, &ken, &ken, &ken] {
        assert_eq!(sprayer.login(email, "wrong password").await.status, 401);
    }
    assert_eq!(sprayer.login(&ken, PASSWORD).await.status, 429);
    let fresh = unique("lee");
    assert_eq!(owner.register(&fresh).await.status, 201);
    assert_eq!(sprayer.login(&format!("{fresh}@example.com"), PASSWORD).await.status, 429);
    assert_eq!(owner.login(&ken, PASSWORD).await.status, 200);

    // After the window, the stranger's address may try again (and the right password works).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(stranger.login(&judy, PASSWORD).await.status, 200);
    assert_eq!(sprayer.login(&ken, PASSWORD).await.status, 200);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_lock_a_user_out() {
    stranger_cannot_lock_out(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_lock_a_user_out_with_redis() {
    let Ok(redis_url) = std::env::var("SOULCHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: SOULCHAT_TEST_REDIS_URL is not set");
        return;
    };
    stranger_cannot_lock_out(Some(redis_url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_is_shared_between_gateways_through_redis() {
    let Ok(redis_url) = std::env::var("SOULCHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: SOULCHAT_TEST_REDIS_URL is not set");
        return;
    };
    let mut options = Options::new(Backend::Sqlite);
    options.login_limits.per_account = 2;
    options.redis_url = Some(redis_url);
    let mut mesh = Mesh::start_with(options).await;
    let second = mesh.start_replica(Role::Gateway, 1, None).await.expect("a second gateway");
    let name = unique("mia");
    mesh.api.register(&name, PASSWORD).await;
    let email = format!("{name}@example.com");
    // One stranger (one address), one failure through each gateway: locked out on both.
    let via_first = Client::from_random_address(&mesh.api.base);
    let via_second = Client { http: via_first.http.clone(), base: second.base.clone() };
    let owner = Client::from_random_address(&second.base);
    assert_eq!(via_first.login(&email, "wrong password").await.status, 401);
    assert_eq!(via_second.login(&email, "wrong password").await.status, 401);
    assert_eq!(via_first.login(&email, PASSWORD).await.status, 429);
    assert_eq!(via_second.login(&email, PASSWORD).await.status, 429);
    assert_eq!(owner.login(&email, PASSWORD).await.status, 200);
    mesh.shutdown().await;
}

async fn parallel_refreshes_share_one_rotation(backend: Backend) {
    let mut options = Options::new(backend);
    options.refresh_grace = Duration::from_secs(2);
    let mesh = Mesh::start_with(options).await;
    let api = &mesh.api;
    let user = api.register("octo", PASSWORD).await;
    let first = user["refresh_token"].as_str().unwrap().to_owned();

    let rotated_at = Instant::now();
    let refreshes: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            let first = first.clone();
            tokio::spawn(async move { api.post("/api/users/refresh", None, json!({"refresh_token": first})).await })
        })
        .collect();
    let mut pairs = BTreeSet::new();
    for refresh in refreshes {
        let r = refresh.await.unwrap();
        assert_eq!(r.status, 200, "a parallel refresh failed: {:?}", r.body);
        pairs.insert((token(&r.body["user"]), r.body["user"]["refresh_token"].as_str().unwrap().to_owned()));
    }
    assert_eq!(pairs.len(), 1, "parallel refreshes of one token gave different pairs");
    let (access, next) = pairs.pop_first().unwrap();
    assert_ne!(next, first);
    // The session goes on.
    assert_eq!(api.get_as("/api/user", &access).await.status, 200);
    let again = api.post("/api/users/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!((again.status, again.body["user"]["refresh_token"].as_str()), (200, Some(next.as_str())));

    // Past the grace, the old token is reuse again: the family ends.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(rotated_at.elapsed()) + Duration::from_millis(200)).await;
    let replay = api.post("/api/users/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!((replay.status, replay.error("refresh_token")), (401, Some("revoked")));
    assert_eq!(api.get_as("/api/user", &access).await.status, 401);
    let next = api.post("/api/users/refresh", None, json!({"refresh_token": next})).await;
    assert_eq!((next.status, next.error("refresh_token")), (401, Some("revoked")));
    mesh.shutdown().await;
}

/// Within the grace, a token whose successor was already used is reuse: a thief who replays it
/// cannot walk the chain to the live token.
async fn replaying_after_moving_on_revokes_within_the_grace(backend: Backend) {
    let mut options = Options::new(backend);
    options.refresh_grace = Duration::from_secs(30);
    let mesh = Mesh::start_with(options).await;
    let api = &mesh.api;
    let user = api.register("pip", PASSWORD).await;
    let first = user["refresh_token"].as_str().unwrap().to_owned();
    let second = api.post("/api/users/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!(second.status, 200);
    let third =
        api.post("/api/users/refresh", None, json!({"refresh_token": second.body["user"]["refresh_token"]})).await;
    assert_eq!(third.status, 200);
    let replay = api.post("/api/users/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!((replay.status, replay.error("refresh_token")), (401, Some("revoked")));
    assert_eq!(api.get_as("/api/user", &token(&third.body["user"])).await.status, 401);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misleading_emails_and_empty_usernames_are_refused_by_field() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let api = &mesh.api;
    let register = |username: &str, email: &str| {
        let body = json!({"user": {"username": username, "email": email, "password": PASSWORD}});
        api.post("/api/users", None, body)
    };
    for email in [
        "nul\u{0}@example.com",
        "bell\u{7}@example.com",
        "c1\u{85}@example.com",
        "evil\u{202E}moc.elpmaxe@example.com",
        "iso\u{2067}late@example.com",
        "user@[127.0.0.1]",
        "user@[IPv6:::1]",
        "Alice <alice@example.com>",
        "two@at@example.com",
    ] {
        let r = register("valid_name", email).await;
        assert_eq!(r.status, 422, "{email:?}: {:?}", r.body);
        assert!(r.error("email").is_some_and(|m| m.starts_with("is invalid")), "{email:?}: {:?}", r.body);
        assert!(r.body["errors"].get("username").is_none(), "{:?}", r.body);
    }
    for username in [".", "..", "-", "_.-"] {
        let r = register(username, "someone@example.com").await;
        assert_eq!(
            (r.status, r.error("username")),
            (422, Some("is invalid (must contain a letter or digit)")),
            "{username:?}: {:?}",
            r.body
        );
    }
    assert!(mesh.strings(Role::User, "SELECT username FROM users").await.is_empty(), "a refused registration wrote");

    // The same rules hold when an account changes.
    let user = api.register("quinn", PASSWORD).await;
    let t = token(&user);
    let r = api.put("/api/user", &t, json!({"user": {"email": "quinn@[10.0.0.1]"}})).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert!(r.error("email").is_some());
    let r = api.put("/api/user", &t, json!({"user": {"username": ".."}})).await;
    assert_eq!((r.status, r.error("username")), (422, Some("is invalid (must contain a letter or digit)")));
    // International addresses stay welcome.
    assert_eq!(register("jurgen", "jürgen@münchen.example").await.status, 201);
    mesh.shutdown().await;
}
