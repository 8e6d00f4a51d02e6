//! The admin listener as an operator's tools see it: Prometheus text with bounded labels,
//! liveness and readiness per role, nothing else; and every metric the dashboards and alert
//! rules under `deploy/` query exists in a running mesh's scrape.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use soulchat_testkit::{Backend, Mesh, Role, Socket, each_backend};

use crate::{PASSWORD, token};

async fn scrape(mesh: &Mesh) -> String {
    let r = mesh.admin.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    r.body.as_str().expect("Prometheus text").to_owned()
}

/// The scrape once it shows `wanted` (what background loops record comes a moment late).
async fn scrape_showing(mesh: &Mesh, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(mesh).await;
        if text.contains(wanted) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/readyz`'s status once it is `wanted`, or the last one after 10 s.
async fn readiness(mesh: &Mesh, wanted: u16) -> soulchat_testkit::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = mesh.admin.get("/readyz").await;
        if r.status == wanted || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The metric names a scrape holds series or a `# TYPE` for.
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every SoulChat metric a PromQL-bearing file names: the words starting `soulchat_` or `http_`
/// (a histogram's `_bucket`, `_sum` and `_count` series name the histogram).
fn queried(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("soulchat_") || word.starts_with("http_"))
        .map(|word| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| word.strip_suffix(suffix)).unwrap_or(word).to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_metrics_health_and_readiness_only() {
    let mut mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    assert_eq!(mesh.api.get_as("/api/profiles/alice", &alice).await.status, 200);
    assert_eq!(mesh.api.get_as("/api/profiles/nobody-x7q", &alice).await.status, 404);
    assert_eq!(mesh.api.get("/api/no-such-route-z9k/deeper").await.status, 404);
    let brew = reqwest::Method::from_bytes(b"BREWQ7").unwrap();
    mesh.api.send(brew, "/api/profiles/alice", Some(&alice), None).await;
    let mut socket = Socket::connect(&mesh.api.base, &alice).await;
    socket.send(json!({"type": "evil-f4x"})).await;
    assert_eq!(socket.next_of("error").await["code"], 422);
    socket.close().await;

    let scrape = scrape_showing(&mesh, r#"soulchat_ws_frames_received_total{type="invalid"}"#).await;
    // Route templates, never raw paths; 404s of no route are `unmatched`.
    assert!(
        scrape.contains(r#"http_requests_total{method="GET",endpoint="/api/profiles/{username}",status="200"}"#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"http_requests_total{method="GET",endpoint="/api/profiles/{username}",status="404"}"#),
        "{scrape}"
    );
    assert!(scrape.contains(r#"endpoint="unmatched",status="404""#), "{scrape}");
    // Untrusted input never becomes a label value.
    for raw in ["nobody-x7q", "no-such-route-z9k", "BREWQ7", "evil-f4x"] {
        assert!(!scrape.contains(raw), "{raw} in {scrape}");
    }
    assert!(scrape.contains(r#"http_requests_total{method="other",endpoint="/api/profiles/{username}""#), "{scrape}");
    assert!(scrape.contains(r#"soulchat_ws_frames_received_total{type="invalid"}"#), "{scrape}");
    // Both sides of the NATS calls, labelled by contract names; histograms with buckets.
    assert!(
        scrape
            .contains(r#"soulchat_rpc_server_requests_total{service="soulchat-user",operation="register",code="ok"}"#),
        "{scrape}"
    );
    assert!(
        scrape.contains(r#"soulchat_rpc_client_requests_total{service="soulchat-profile",operation="get",code="404"}"#),
        "{scrape}"
    );
    assert!(scrape.contains("http_request_duration_seconds_bucket{"), "{scrape}");
    assert!(scrape.contains("# HELP http_requests_total "), "{scrape}");

    assert_eq!(mesh.admin.get("/healthz").await.status, 200);
    let ready = readiness(&mesh, 200).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    for role in ["soulchat-gateway", "soulchat-user", "soulchat-profile", "soulchat-chat", "soulchat-notification"] {
        assert_eq!(ready.body["roles"][role], "ready", "{:?}", ready.body);
    }
    for path in ["/", "/metricsx", "/api/users", "/metrics/more", "/healthz/x"] {
        assert_eq!(mesh.admin.get(path).await.status, 404, "{path}");
    }

    // A stopped worker is not ready, and is again once it serves.
    mesh.stop_role(Role::User).await;
    let ready = mesh.admin.get("/readyz").await;
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    assert_eq!(ready.body["roles"]["soulchat-user"], "stopping");
    assert_eq!(ready.body["roles"]["soulchat-chat"], "ready");
    mesh.start_role(Role::User).await;
    let ready = readiness(&mesh, 200).await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    mesh.shutdown().await;
}

each_backend!(every_metric_the_dashboards_and_alerts_use_exists);

async fn every_metric_the_dashboards_and_alerts_use_exists(backend: Backend) {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let rules = std::fs::read_to_string(format!("{deploy}/prometheus/alerts.yml")).expect("the alert rules");
    let mut used = queried(&rules);
    let dashboards = std::fs::read_dir(format!("{deploy}/grafana/dashboards")).expect("the dashboards");
    for dashboard in dashboards {
        let path = dashboard.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("a dashboard is JSON");
        for panel in parsed["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                used.extend(queried(target["expr"].as_str().unwrap_or_default()));
            }
        }
    }
    assert!(used.len() > 20, "{used:?}");

    // Traffic that touches every part: accounts, profiles, chat over REST and a socket.
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    token(&mesh.api.register("bob", PASSWORD).await);
    mesh.api.get_as("/api/profiles/bob", &alice).await;
    mesh.api.get_as("/api/profiles/bob", &alice).await;
    let mut socket = Socket::connect(&mesh.api.base, &alice).await;
    socket.send(json!({"type": "resume", "conversations": {}})).await;
    socket.next_of("resumed").await;
    let conversation = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = conversation.body["conversation"]["id"].as_str().expect("a conversation").to_owned();
    socket
        .send(json!({"type": "send", "conversation_id": id, "client_id": "m-1", "content": "hi", "kind": "text"}))
        .await;
    socket.next_of("ack").await;
    socket.close().await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let (missing, scraped) = loop {
        let scraped = scrape(&mesh).await;
        let have = exported(&scraped);
        let missing: Vec<&String> = used.iter().filter(|name| !have.contains(*name)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break (missing.into_iter().cloned().collect::<Vec<_>>(), scraped);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(missing.is_empty(), "used by deploy/ but not exported: {missing:?}\n{scraped}");

    // And they count what happened (lower bounds: every test of the process records here).
    for series in [
        "soulchat_chat_messages_stored_total",
        "soulchat_chat_commit_batch_size_count",
        "soulchat_chat_event_age_seconds_count",
        "soulchat_ws_resumes_total",
        r#"soulchat_ws_frames_received_total{type="send"}"#,
        r#"soulchat_ws_frames_sent_total{type="ack"}"#,
        r#"soulchat_ws_closes_total{code="client"}"#,
        r#"soulchat_relay_published_total{service="soulchat-user",relay="outbox-relay"}"#,
        r#"soulchat_relay_published_total{service="soulchat-chat",relay="chat-relay"}"#,
        r#"soulchat_cache_requests_total{cache="profile",result="hit"}"#,
        r#"soulchat_saga_steps_total{saga="register",step="profile",outcome="done"}"#,
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while mesh.metric(series).await < 1.0 {
            assert!(Instant::now() < deadline, "{series} did not count\n{}", scrape(&mesh).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    mesh.shutdown().await;
}

/// Stops the child on the way out, also when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soulchat_up_serves_every_role_from_one_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let free = || soulchat_runtime::nats_server::free_port().unwrap();
    let (http, admin) = (format!("127.0.0.1:{}", free()), format!("127.0.0.1:{}", free()));
    let _up = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_soulchat"))
            .arg("up")
            .args(["--data-dir", dir.path().to_str().unwrap(), "--http-addr", &http])
            .env("SOULCHAT_METRICS_ADDR", &admin)
            .env_remove("NATS_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting soulchat up"),
    );
    let admin = soulchat_testkit::Api::new(format!("http://{admin}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let ready = reqwest::get(format!("{}/readyz", admin.base)).await;
        if let Ok(ready) = ready
            && ready.status() == 200
        {
            break ready.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "soulchat up did not become ready on its admin listener within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let roles: BTreeSet<&str> = ready["roles"].as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> =
        ["soulchat-gateway", "soulchat-user", "soulchat-profile", "soulchat-chat", "soulchat-notification"].into();
    assert_eq!(roles, expected);

    // The public port does not serve the metrics; the admin port does, for every role.
    let api = soulchat_testkit::Api::new(format!("http://{http}"));
    assert_eq!(api.get("/metrics").await.status, 404);
    api.register("umberto", PASSWORD).await;
    let scrape = admin.get("/metrics").await.body.as_str().unwrap_or_default().to_owned();
    assert!(scrape.contains(r#"endpoint="/api/users",status="201""#), "{scrape}");
    assert!(
        scrape
            .contains(r#"soulchat_rpc_server_requests_total{service="soulchat-user",operation="register",code="ok"}"#)
    );
}
