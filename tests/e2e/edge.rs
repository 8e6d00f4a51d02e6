//! The edge under abuse, over real sockets: half-open connections, connection caps, rate
//! limits (in process and through Redis), oversized WebSocket frames, and input that must get a
//! JSON error naming what is wrong (never a Rust type), with the right media type and headers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use soulchat_testkit::{Backend, Closed, Mesh, Options, Socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::{PASSWORD, token};

fn gateway_addr(mesh: &Mesh) -> SocketAddr {
    mesh.api.base.trim_start_matches("http://").parse().expect("the gateway's address")
}

/// A connection to the gateway from `source` (any 127.x.y.z: each is its own client address).
async fn connect_from(gateway: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.bind(format!("{source}:0").parse().unwrap()).expect("binding a loopback source address");
    socket.connect(gateway).await.expect("connecting to the gateway")
}

/// Sends `request` as is and reads until the server closes, within `wait`.
async fn exchange(stream: &mut TcpStream, request: &[u8], wait: Duration) -> String {
    stream.write_all(request).await.expect("writing a request");
    let mut answer = Vec::new();
    tokio::time::timeout(wait, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("no complete answer within {wait:?}: {}", String::from_utf8_lossy(&answer)))
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn healthz_from(gateway: SocketAddr, source: &str) -> String {
    let mut stream = connect_from(gateway, source).await;
    exchange(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: soulchat\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await
}

/// Whether the server closed `stream` (EOF or reset) within `wait`; bytes it sent first are skipped.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_capped_and_timed_out_while_healthz_answers() {
    let mut options = Options::new(Backend::Sqlite);
    options.connections.per_address = 150;
    options.connections.header_timeout = Duration::from_secs(2);
    options.connections.body_timeout = Duration::from_secs(2);
    let mesh = Mesh::start_with(options).await;
    let gateway = gateway_addr(&mesh);

    // 150 half-open connections from one address, each stuck mid-request: half with partial
    // headers, half with headers promising a body that never comes.
    let mut half_open = Vec::new();
    for i in 0..150 {
        let mut stream = connect_from(gateway, "127.0.0.1").await;
        let partial: &[u8] = if i % 2 == 0 {
            b"GET /api/profiles/x HTTP/1.1\r\nHost: soulchat\r\nX-Slow: "
        } else {
            b"POST /api/users/login HTTP/1.1\r\nHost: soulchat\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"us"
        };
        stream.write_all(partial).await.unwrap();
        half_open.push(stream);
    }
    // Past the per-address cap a connection is closed at once, unread.
    let started = Instant::now();
    let mut excess = connect_from(gateway, "127.0.0.1").await;
    let _ = excess.write_all(b"GET /healthz HTTP/1.1\r\nHost: soulchat\r\n\r\n").await;
    assert!(closed_within(&mut excess, Duration::from_secs(1)).await, "a connection over the cap is refused");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Another client is served promptly all along.
    let started = Instant::now();
    let answer = healthz_from(gateway, "127.0.0.2").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1), "healthz took {:?}", started.elapsed());

    // The half-open ones are closed after their timeout (2 s), not before half of it.
    let mut buf = [0u8; 64];
    let probe = tokio::time::timeout(Duration::from_millis(200), half_open[0].read(&mut buf)).await;
    assert!(probe.is_err(), "a half-open connection is held until its timeout");
    let deadline = Duration::from_secs(6);
    for (i, stream) in half_open.iter_mut().enumerate() {
        assert!(closed_within(stream, deadline).await, "half-open connection {i} still open");
    }
    // Its slots are free again: the same address is served.
    let answer = healthz_from(gateway, "127.0.0.1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_is_408_and_an_idle_connection_closes() {
    let mut options = Options::new(Backend::Sqlite);
    options.connections.body_timeout = Duration::from_secs(1);
    options.connections.idle_timeout = Duration::from_secs(1);
    let mesh = Mesh::start_with(options).await;
    let gateway = gateway_addr(&mesh);

    let mut stream = connect_from(gateway, "127.0.0.1").await;
    let answer = exchange(
        &mut stream,
        b"POST /api/users/login HTTP/1.1\r\nHost: soulchat\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"errors":{"body":["did not arrive in time"]}}"#), "{answer}");

    // A keep-alive connection after its answer: closed once idle for a second.
    let mut stream = connect_from(gateway, "127.0.0.1").await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: soulchat\r\n\r\n").await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(4)).await, "an idle keep-alive connection closes");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the idle timeout: {:?}", started.elapsed());
    mesh.shutdown().await;
}

/// One request, with headers of its own, from the default loopback address.
async fn request(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http.request(method, format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body.to_string());
    }
    let response = request.send().await.expect("the gateway answers");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let bytes = response.bytes().await.expect("a body");
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_limited(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body, &json!({"errors": {"rate": ["too many requests"]}}));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
}

/// Per client address, per user, and for account requests, behind a trusted proxy; the same
/// buckets through Redis when `redis_url` is given (so every request names a client address of
/// its own, never shared with another test on the same Redis).
async fn rate_limits(redis_url: Option<String>) {
    let mut options = Options::new(Backend::Sqlite);
    options.redis_url = redis_url.clone();
    // Per hour, so that no token comes back while the test runs.
    options.rate_limits.per_address = "30/h".parse().unwrap();
    options.rate_limits.per_user = "3/h".parse().unwrap();
    options.rate_limits.accounts = "2/h".parse().unwrap();
    options.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let mesh = Mesh::start_with(options).await;
    let (base, http) = (mesh.api.base.clone(), reqwest::Client::new());
    let n = (uuid::Uuid::new_v4().as_u128() & 0xff_ffff) as u32;
    let client = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    let other_client = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, (n + 1) & 255);
    let run = format!("{n:x}");
    let from = |address: &str| [("x-forwarded-for", address.to_owned())];
    macro_rules! send {
        ($method:expr, $path:expr, $address:expr, $token:expr, $body:expr) => {{
            let forwarded = from($address);
            let auth = $token.map(|t: &str| format!("Token {t}"));
            let mut headers: Vec<(&str, &str)> = vec![(forwarded[0].0, forwarded[0].1.as_str())];
            if let Some(auth) = &auth {
                headers.push(("authorization", auth.as_str()));
            }
            request(&http, &base, $method, $path, &headers, $body).await
        }};
    }
    let register =
        |name: &str| json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}});

    // Account requests: two an hour per address, registration and password reset together.
    let (status, _, alice) = send!(Method::POST, "/api/users", &client, None, Some(register(&format!("a{run}"))));
    assert_eq!(status, 201, "{alice}");
    let alice = token(&alice["user"]);
    let (status, _, _) =
        send!(Method::POST, "/api/users/password/forgot", &client, None, Some(json!({"email": "x@example.com"})));
    assert_eq!(status, 204);
    let (status, headers, body) = send!(Method::POST, "/api/users", &client, None, Some(register(&format!("b{run}"))));
    assert_limited(status, &headers, &body);
    let (status, headers, body) = send!(
        Method::POST,
        "/api/users/password/reset",
        &client,
        None,
        Some(json!({"token": "t", "password": PASSWORD}))
    );
    assert_limited(status, &headers, &body);
    // Another client behind the same proxy has buckets of its own.
    let (status, _, bob) = send!(Method::POST, "/api/users", &other_client, None, Some(register(&format!("b{run}"))));
    assert_eq!(status, 201, "{bob}");
    let bob = token(&bob["user"]);

    // Per user: three requests an hour, whatever the address.
    for address in [&client, &other_client, &client] {
        let (status, _, body) = send!(Method::GET, "/api/user", address, Some(alice.as_str()), None);
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = send!(Method::GET, "/api/user", &other_client, Some(alice.as_str()), None);
    assert_limited(status, &headers, &body);
    let (status, _, _) = send!(Method::GET, "/api/user", &other_client, Some(bob.as_str()), None);
    assert_eq!(status, 200, "another user is not limited");

    // Per address: 30 an hour over every route; 6 spent above (refused ones count too).
    let mut answered = 0;
    let limited = loop {
        let (status, headers, body) = send!(Method::GET, "/api/profiles?q=a", &client, None, None);
        if status != 200 {
            break (status, headers, body);
        }
        answered += 1;
        assert!(answered < 30, "the address limit never applied");
    };
    assert_limited(limited.0, &limited.1, &limited.2);
    assert_eq!(answered, 30 - 6, "every request counts, refused ones too");
    let (status, _, _) = send!(Method::GET, "/api/nowhere", &client, None, None);
    assert_eq!(status, 429, "unknown routes count too");
    let (status, _, _) = send!(Method::GET, "/healthz", &client, None, None);
    assert_eq!(status, 200, "health probes are not limited");

    if redis_url.is_none() {
        // A client that is not a trusted proxy cannot choose its bucket with the header.
        let untrusted = reqwest::Client::builder().local_address("127.0.0.2".parse().ok()).build().unwrap();
        let mut statuses = Vec::new();
        for i in 0..31 {
            let spoofed = format!("192.0.2.{i}");
            let (status, _, _) =
                request(&untrusted, &base, Method::GET, "/api/profiles?q=a", &[("x-forwarded-for", &spoofed)], None)
                    .await;
            statuses.push(status);
        }
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
    }
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    rate_limits(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let Ok(redis_url) = std::env::var("SOULCHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: SOULCHAT_TEST_REDIS_URL is not set");
        return;
    };
    rate_limits(Some(redis_url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_over_the_limit_close_with_1009() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    for size in [70 * 1024, 300 * 1024, 1024 * 1024] {
        let mut ws = Socket::connect(&mesh.api.base, &alice).await;
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
        ws.send_raw(format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(size))).await;
        let (_, closed) = ws.closed_within(Duration::from_secs(5)).await;
        assert_eq!(closed, Closed::Code(1009, "frame too large (maximum is 65536 bytes)".into()), "{size} bytes");
    }
    // A frame within the limit is answered.
    let mut ws = Socket::connect(&mesh.api.base, &alice).await;
    ws.send_raw(format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(60 * 1024))).await;
    assert_eq!(ws.next_of("pong").await["type"], "pong");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_errors_are_json_and_name_the_field() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let (api, gateway) = (&mesh.api, gateway_addr(&mesh));
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    mesh.api.register("carol", PASSWORD).await;

    // serde's words for Rust types never reach a client.
    let r = api.post("/api/users/login", None, json!({"user": "alice"})).await;
    assert_eq!((r.status, r.error("user")), (422, Some("is invalid (expected an object)")), "{:?}", r.body);
    let r = api.post("/api/users/login", None, json!({"user": {"email": 5, "password": PASSWORD}})).await;
    assert_eq!((r.status, r.error("email")), (422, Some("is invalid (expected a string)")), "{:?}", r.body);
    let r = api.post("/api/users", None, json!(["user"])).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    for body in [json!({"user": "alice"}), json!(["user"]), json!({"user": {"email": []}})] {
        for path in ["/api/users/login", "/api/users", "/api/conversations/direct"] {
            let r = api.post(path, Some(&alice), body.clone()).await;
            let text = r.body.to_string();
            assert!(!text.contains("struct") && !text.contains("Body") && !text.contains("sequence"), "{path}: {text}");
        }
    }

    // Anything after the JSON value is malformed.
    let r = api
        .send_raw(
            Method::POST,
            "/api/users/login",
            None,
            Some(
                format!(r#"{{"user":{{"email":"alice@example.com","password":"{PASSWORD}"}}}} trailing"#).into_bytes(),
            ),
        )
        .await;
    assert_eq!((r.status, r.error("body")), (400, Some("is invalid")), "{:?}", r.body);

    // A path that does not decode is a JSON 400.
    for (method, path) in [
        (Method::GET, "/api/profiles/%FF"),
        (Method::POST, "/api/profiles/%C3%28/follow"),
        (Method::GET, "/api/conversations/%FF%FE/messages"),
    ] {
        let r = api.send_raw(method, path, Some(&alice), None).await;
        assert_eq!((r.status, r.error("path")), (400, Some("is invalid")), "{path}: {:?}", r.body);
    }

    // Bodies must be JSON, by media type: 415 otherwise, before anything else happens.
    let http = reqwest::Client::new();
    let login = format!(r#"{{"user":{{"email":"alice@example.com","password":"{PASSWORD}"}}}}"#);
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request = http.post(format!("{}/api/users/login", api.base)).body(login.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"errors": {"body": ["must be application/json"]}}));
    }
    let response = http
        .post(format!("{}/api/users/login", api.base))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(login.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "a charset parameter is fine");
    // Requests without a body need no media type.
    let r = api.send_raw(Method::POST, "/api/profiles/carol/follow", Some(&alice), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = api.send_raw(Method::POST, "/api/ws/ticket", Some(&alice), None).await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // Auth responses are not to be cached; every response says nosniff.
    let no_store =
        |r: &soulchat_testkit::Response| r.headers.get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    let fresh = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "bob", "email": "bob@example.com", "password": PASSWORD}}),
        )
        .await;
    let logged_in = api.login("alice@example.com", PASSWORD).await;
    let refreshed =
        api.post("/api/users/refresh", None, json!({"refresh_token": logged_in.body["user"]["refresh_token"]})).await;
    let current = api.get_as("/api/user", &alice).await;
    let updated = api.put("/api/user", &alice, json!({"user": {"bio": "hi"}})).await;
    let ticket = api.post("/api/ws/ticket", Some(&alice), json!({})).await;
    let logged_out = api.post("/api/users/logout", Some(&token(&logged_in.body["user"])), json!({})).await;
    for (what, r) in [
        ("register", &fresh),
        ("login", &logged_in),
        ("refresh", &refreshed),
        ("current", &current),
        ("update", &updated),
        ("ticket", &ticket),
        ("logout", &logged_out),
    ] {
        assert!(r.status < 300, "{what}: {} {:?}", r.status, r.body);
        assert_eq!(no_store(r).as_deref(), Some("no-store"), "{what}");
    }
    let profile = api.get("/api/profiles/alice").await;
    assert_eq!(profile.status, 200);
    for r in [&fresh, &logged_in, &profile, &api.get("/api/nowhere").await, &api.get("/healthz").await] {
        assert_eq!(r.headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"));
    }
    let mut stream = connect_from(gateway, "127.0.0.1").await;
    let answer = exchange(
        &mut stream,
        b"POST /api/users HTTP/1.1\r\nHost: soulchat\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        Duration::from_secs(2),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.to_lowercase().contains("x-content-type-options: nosniff"), "{answer}");
    mesh.shutdown().await;
}

/// `/api/openapi.json` is the generated document, and what the API answers, errors included,
/// is in it: each answer's status is documented for its route (schemathesis, in CI, does the
/// same at scale against the whole document).
#[tokio::test]
async fn the_openapi_document_is_served_and_lists_what_the_api_answers() {
    let mut options = Options::new(Backend::Sqlite);
    options.rate_limits.accounts = "3/h".parse().unwrap();
    let mesh = Mesh::start_with(options).await;
    let http = reqwest::Client::new();
    let base = mesh.api.base.clone();
    let (status, headers, doc) = request(&http, &base, Method::GET, "/api/openapi.json", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let generated: Value = serde_json::from_str(&soulchat_gateway::openapi().unwrap()).unwrap();
    assert_eq!(doc, generated);

    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let auth = format!("Token {alice}");
    let auth = [("Authorization", auth.as_str())];
    let user =
        |name: &str| json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}});
    // Method, path, the path's template in the document, headers, body.
    type Case<'a> = (Method, &'a str, &'a str, &'a [(&'a str, &'a str)], Option<Value>);
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/users", "/api/users", &[], Some(user("bob"))),
        (Method::POST, "/api/users", "/api/users", &[], Some(user("alice"))),
        (Method::POST, "/api/users", "/api/users", &[], Some(user("carol"))),
        (
            Method::POST,
            "/api/users/login",
            "/api/users/login",
            &[],
            Some(json!({"user": {"email": "x@example.com", "password": "wrong password"}})),
        ),
        (Method::POST, "/api/users/login", "/api/users/login", &[], Some(json!({"user": 5}))),
        (Method::GET, "/api/user", "/api/user", &[], None),
        (Method::GET, "/api/profiles/nobody", "/api/profiles/{username}", &[], None),
        (Method::GET, "/api/profiles/alice/followers?limit=0", "/api/profiles/{username}/followers", &[], None),
        (
            Method::POST,
            "/api/conversations/direct",
            "/api/conversations/direct",
            &auth,
            Some(json!({"username": "nobody"})),
        ),
        (Method::GET, "/api/conversations/x/messages?before=y", "/api/conversations/{id}/messages", &auth, None),
        (
            Method::PATCH,
            "/api/conversations/x/messages/1",
            "/api/conversations/{id}/messages/{seq}",
            &auth,
            Some(json!({"content": "hi"})),
        ),
        (Method::POST, "/api/admin/alerts", "/api/admin/alerts", &auth, Some(json!({"title": "t", "body": "b"}))),
        (Method::GET, "/api/push/public-key", "/api/push/public-key", &[], None),
        (Method::GET, "/ws", "/ws", &auth, None),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (method, path, template, headers, body) in cases {
        let (status, _, answer) = request(&http, &base, method.clone(), path, headers, body).await;
        let documented = &doc["paths"][template][method.as_str().to_lowercase()]["responses"];
        assert!(
            documented.get(status.to_string()).is_some(),
            "{method} {path} answered {status} {answer}, undocumented"
        );
        seen.insert(status);
    }
    // A non-JSON body, on any route that takes one.
    let response = http
        .post(format!("{base}/api/conversations/direct"))
        .header("Authorization", format!("Token {alice}"))
        .header("Content-Type", "text/plain")
        .body("bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert!(doc["paths"]["/api/conversations/direct"]["post"]["responses"]["415"].is_object());
    for status in [201, 401, 404, 409, 422, 429, 403, 400] {
        assert!(seen.contains(&status), "no case answered {status}: {seen:?}");
    }
    mesh.shutdown().await;
}
