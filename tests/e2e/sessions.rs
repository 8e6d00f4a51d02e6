//! Tokens and sessions: what the gateway refuses, and how revocation spreads.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use soulchat_subjects::auth::AccessClaims;
use soulchat_testkit::{Backend, JWT_SECRET, Mesh, Options, each_backend};

use crate::{PASSWORD, token};

each_backend!(refresh_reuse_revokes_the_family, password_change_ends_other_sessions);

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn sign(claims: &AccessClaims, secret: &str) -> String {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_a_reason() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let api = &mesh.api;
    let erin = api.register("erin", PASSWORD).await;
    let good = token(&erin);
    let mut claims: AccessClaims = {
        let payload = good.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };

    let missing = api.get("/api/user").await;
    assert_eq!((missing.status, missing.error("token")), (401, Some("is missing")));

    claims.exp = now() - 3600;
    claims.iat = now() - 7200;
    let expired = api.get_as("/api/user", &sign(&claims, JWT_SECRET)).await;
    assert_eq!((expired.status, expired.error("token")), (401, Some("has expired")));

    claims.exp = now() + 600;
    let foreign = api.get_as("/api/user", &sign(&claims, "some-other-secret")).await;
    assert_eq!((foreign.status, foreign.error("token")), (401, Some("is invalid")));

    // Another user's id in a token signed for erin: the signature no longer matches.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut forged = claims.clone();
    forged.sub = "someone-else".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = api.get_as("/api/user", &parts.join(".")).await;
    assert_eq!((tampered.status, tampered.error("token")), (401, Some("is invalid")));

    let garbage = api.get_as("/api/user", "not-a-jwt").await;
    assert_eq!(garbage.status, 401);
    let scheme = api.send_raw(reqwest::Method::GET, "/api/user", None, None).await;
    assert_eq!(scheme.status, 401);

    // "Bearer" works as well as "Token".
    let bearer = reqwest::Client::new()
        .get(format!("{}/api/user", api.base))
        .header("Authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_expire() {
    let mut options = Options::new(Backend::Sqlite);
    options.access_ttl = Duration::from_secs(1);
    let mesh = Mesh::start_with(options).await;
    let t = token(&mesh.api.register("frank", PASSWORD).await);
    assert_eq!(mesh.api.get_as("/api/user", &t).await.status, 200);
    // 1 s lifetime plus the verifier's 5 s leeway.
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    let r = mesh.api.get_as("/api/user", &t).await;
    assert_eq!((r.status, r.error("token")), (401, Some("has expired")));
    mesh.shutdown().await;
}

async fn refresh_reuse_revokes_the_family(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let user = api.register("grace", PASSWORD).await;
    let first_access = token(&user);
    let r1 = user["refresh_token"].as_str().unwrap().to_owned();

    let rotated = api.post("/api/users/refresh", None, json!({"refresh_token": r1})).await;
    assert_eq!(rotated.status, 200);
    let r2 = rotated.body["user"]["refresh_token"].as_str().unwrap().to_owned();
    let second_access = token(&rotated.body["user"]);

    // An unrelated session of the same user must survive.
    let other = api.login("grace@example.com", PASSWORD).await;
    let other_access = token(&other.body["user"]);

    // The client moves on with its new token...
    let moved_on = api.post("/api/users/refresh", None, json!({"refresh_token": r2})).await;
    assert_eq!(moved_on.status, 200);
    let r3 = moved_on.body["user"]["refresh_token"].as_str().unwrap().to_owned();
    let third_access = token(&moved_on.body["user"]);

    // ...and someone replays the rotated one (its grace for concurrent refreshes does not cover a
    // token whose successor was used): the whole family dies.
    let replay = api.post("/api/users/refresh", None, json!({"refresh_token": r1})).await;
    assert_eq!((replay.status, replay.error("refresh_token")), (401, Some("revoked")));
    let legit = api.post("/api/users/refresh", None, json!({"refresh_token": r3})).await;
    assert_eq!((legit.status, legit.error("refresh_token")), (401, Some("revoked")));
    for t in [&first_access, &second_access, &third_access] {
        assert_eq!(api.get_as("/api/user", t).await.status, 401, "an access token of the revoked family works");
    }
    assert_eq!(api.get_as("/api/user", &other_access).await.status, 200);

    let unknown = api.post("/api/users/refresh", None, json!({"refresh_token": "nope"})).await;
    assert_eq!((unknown.status, unknown.error("refresh_token")), (401, Some("invalid")));
    let blank = api.post("/api/users/refresh", None, json!({})).await;
    assert_eq!((blank.status, blank.error("refresh_token")), (422, Some("can't be blank")));
    mesh.shutdown().await;
}

async fn password_change_ends_other_sessions(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    api.register("heidi", PASSWORD).await;
    let phone = api.login("heidi@example.com", PASSWORD).await.body["user"].clone();
    let laptop = api.login("heidi@example.com", PASSWORD).await.body["user"].clone();

    let changed = api.put("/api/user", &token(&laptop), json!({"user": {"password": "a brand new secret"}})).await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(api.get_as("/api/user", &token(&phone)).await.status, 401, "the other session is revoked");
    let phone_refresh = api.post("/api/users/refresh", None, json!({"refresh_token": phone["refresh_token"]})).await;
    assert_eq!(phone_refresh.status, 401);
    assert_eq!(api.get_as("/api/user", &token(&laptop)).await.status, 200, "the session that changed it lives on");
    assert_eq!(api.login("heidi@example.com", PASSWORD).await.status, 401);
    assert_eq!(api.login("heidi@example.com", "a brand new secret").await.status, 200);

    let short = api.put("/api/user", &token(&laptop), json!({"user": {"password": "short"}})).await;
    assert_eq!(short.status, 422);
    assert!(short.error("password").unwrap().contains("too short"));
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_email_answer_alike() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let api = &mesh.api;
    api.register("ivan", PASSWORD).await;
    let mut wrong = Duration::ZERO;
    let mut unknown = Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        let a = api.login("ivan@example.com", "not the password").await;
        wrong += t.elapsed();
        let t = Instant::now();
        let b = api.login("nobody@example.com", "not the password").await;
        unknown += t.elapsed();
        assert_eq!((a.status, &a.body), (b.status, &b.body));
        assert_eq!((a.status, a.error("credentials")), (401, Some("invalid")));
    }
    // Both pay for an argon2 verification; a missing user is not answered early.
    assert!(unknown * 2 >= wrong, "unknown email answered much faster ({unknown:?}) than a wrong password ({wrong:?})");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_limited() {
    let mut options = Options::new(Backend::Sqlite);
    options.login_limits.per_account = 3;
    let mesh = Mesh::start_with(options).await;
    let api = &mesh.api;
    api.register("judy", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(api.login("judy@example.com", "wrong password").await.status, 401);
    }
    let limited = api.login("JUDY@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429, "{:?}", limited.body);
    let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(limited.error("login").is_some());
    // Another account from the same address is not affected by judy's limit.
    api.register("ken", PASSWORD).await;
    assert_eq!(api.login("ken@example.com", PASSWORD).await.status, 200);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_are_shared_through_redis() {
    let Ok(redis_url) = std::env::var("SOULCHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: SOULCHAT_TEST_REDIS_URL is not set");
        return;
    };
    let mut options = Options::new(Backend::Sqlite);
    options.login_limits.per_account = 2;
    options.redis_url = Some(redis_url);
    let mesh = Mesh::start_with(options).await;
    let api = &mesh.api;
    // A unique account, since Redis outlives the test.
    let name = format!("lim{}", uuid::Uuid::new_v4().simple().to_string().get(..10).unwrap());
    api.register(&name, PASSWORD).await;
    let email = format!("{name}@example.com");
    for _ in 0..2 {
        assert_eq!(api.login(&email, "wrong password").await.status, 401);
    }
    assert_eq!(api.login(&email, PASSWORD).await.status, 429);
    mesh.shutdown().await;
}
