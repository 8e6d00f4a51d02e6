//! The audit log: security events land on `SOULCHAT_AUDIT` with who, from where and which
//! request, and `soulchat audit` prints them.

use std::time::{Duration, Instant};

use soulchat_subjects::audit::{self, Entry, Filter};
use soulchat_subjects::broker::Identity;
use soulchat_subjects::connect::Credentials;
use soulchat_testkit::{Backend, Mesh, Role, each_backend};

use crate::{PASSWORD, token};

each_backend!(sign_ins_and_outs_are_audited, admin_actions_are_audited);

async fn sign_ins_and_outs_are_audited(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let user = mesh.api.register("audited", PASSWORD).await;
    let user_id = soulchat_testkit::user_id(&token(&user));
    let http = reqwest::Client::new();
    let failed = http
        .post(format!("{}/api/users/login", mesh.api.base))
        .header("User-Agent", "audit-test/1.0")
        .json(&serde_json::json!({"user": {"email": "audited@example.com", "password": "not the password"}}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(failed.status(), 401);
    let failed_request = failed.headers()["soulchat-request-id"].to_str().unwrap().to_owned();
    let login = mesh.api.login("audited@example.com", PASSWORD).await;
    assert_eq!(login.status, 200);
    let session = login.body["user"]["token"].as_str().unwrap().to_owned();
    assert_eq!(mesh.api.post("/api/users/logout", Some(&session), serde_json::json!({})).await.status, 204);
    // Somebody else's failure is not this user's.
    assert_eq!(mesh.api.login("nobody@example.com", PASSWORD).await.status, 401);

    let js = async_nats::jetstream::new(mesh.client().await);
    let mine = Filter { user: Some("audited".into()), ..Default::default() };
    let entries = read_until(&js, &mine, 4).await;
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["registered", "login_failed", "login_succeeded", "logged_out"]);
    for entry in &entries {
        assert_eq!(entry.event.user_id, user_id, "{entry}");
        assert_eq!(entry.event.client_address, "127.0.0.1", "{entry}");
        assert!(!entry.event.request_id.is_empty(), "{entry}");
        assert!(entry.event.at_ms > 0, "{entry}");
    }
    let failure = &entries[1].event;
    assert_eq!(failure.user_agent, "audit-test/1.0");
    assert_eq!(failure.request_id, failed_request, "the id the client was answered with");
    assert_eq!(failure.detail, "audited@example.com");

    // An unknown email is recorded with what was tried, and no account.
    let unknown = read_until(&js, &Filter { kind: Some("login_failed".into()), ..Default::default() }, 2).await;
    let stranger = unknown.iter().find(|e| e.event.detail == "nobody@example.com").expect("the stranger's attempt");
    assert!(stranger.event.user_id.is_empty() && stranger.event.username.is_empty());
    // A kind that does not exist is an error that lists the kinds.
    let error = audit::read(&js, &Filter { kind: Some("nope".into()), ..Default::default() }).await.unwrap_err();
    assert!(error.to_string().contains("login_failed"), "{error}");

    // The command prints one line per event, filtered as asked.
    let Credentials::Nkey(seed) = mesh.nats_as(Identity::Admin).credentials else { panic!("the mesh uses NKeys") };
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_soulchat"))
        .args(["audit", "--user", "audited", "--kind", "login_failed", "--since", "1h"])
        .env("NATS_URL", mesh.nats.url())
        .env("SOULCHAT_NATS_NKEY", seed)
        .env("SOULCHAT_LOG_FORMAT", "json")
        .output()
        .await
        .expect("running soulchat audit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    for part in [" login_failed ", "user=\"audited\"", "client=\"127.0.0.1\"", "agent=\"audit-test/1.0\""] {
        assert!(lines[0].contains(part), "{part} in {stdout}");
    }
    mesh.shutdown().await;
}

async fn admin_actions_are_audited(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let admin = token(&mesh.api.register("admin", PASSWORD).await);
    let user = token(&mesh.api.register("someone", PASSWORD).await);
    let (admin_id, user_id) = (soulchat_testkit::user_id(&admin), soulchat_testkit::user_id(&user));
    mesh.options.admin_user_ids = vec![admin_id.clone()];
    mesh.stop_role(Role::Gateway).await;
    mesh.start_role(Role::Gateway).await;
    let alert = serde_json::json!({"title": "Maintenance", "body": "at noon"});
    assert_eq!(mesh.api.post("/api/admin/alerts", Some(&user), alert.clone()).await.status, 403);
    assert_eq!(mesh.api.post("/api/admin/alerts", Some(&admin), alert).await.status, 201);
    // A worker's refusal too: a plain member may not rename the group.
    let group = mesh
        .api
        .post("/api/conversations", Some(&admin), serde_json::json!({"name": "ops", "members": ["someone"]}))
        .await;
    assert_eq!(group.status, 201, "{:?}", group.body);
    let rename = format!("/api/conversations/{}", group.body["conversation"]["id"].as_str().unwrap());
    let renamed =
        mesh.api.send(reqwest::Method::PATCH, &rename, Some(&user), Some(serde_json::json!({"name": "mine"}))).await;
    assert_eq!(renamed.status, 403, "{:?}", renamed.body);

    let js = async_nats::jetstream::new(mesh.client().await);
    let refused = read_until(&js, &Filter { kind: Some("permission_refused".into()), ..Default::default() }, 2).await;
    assert_eq!(refused.len(), 2);
    let details: Vec<(&str, &str)> =
        refused.iter().map(|r| (r.event.user_id.as_str(), r.event.detail.as_str())).collect();
    assert_eq!(
        details,
        [(user_id.as_str(), "POST /api/admin/alerts"), (user_id.as_str(), "PATCH /api/conversations/{id}")]
    );
    assert_eq!(refused[0].event.client_address, "127.0.0.1");
    let sent = read_until(&js, &Filter { kind: Some("alert_sent".into()), ..Default::default() }, 1).await;
    assert_eq!((sent[0].event.user_id.as_str(), sent[0].event.detail.as_str()), (admin_id.as_str(), "Maintenance"));
    mesh.shutdown().await;
}

/// The events `filter` selects, once there are at least `count` (they are relayed after commit).
async fn read_until(js: &async_nats::jetstream::Context, filter: &Filter, count: usize) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = audit::read(js, filter).await.expect("reading the audit stream");
        if entries.len() >= count {
            return entries;
        }
        assert!(Instant::now() < deadline, "only {} audit events: {entries:?}", entries.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
