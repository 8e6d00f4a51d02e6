//! Reports and moderation end to end: members report messages, administrators list and resolve
//! them (delete, dismiss, suspend), suspensions end every session and refuse login, and the
//! operations over NATS.

use std::time::Duration;

use serde_json::{Value, json};
use soulchat_subjects::audit;
use soulchat_subjects::broker::Identity;
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::user::{self, messages as um};
use soulchat_subjects::{CallContext, CallError, Caller};
use soulchat_testkit::{Backend, Closed, Mesh, Role, Socket, each_backend, user_id};

use crate::{PASSWORD, token};

each_backend!(members_report_and_admins_resolve, admins_suspend_accounts, moderation_over_nats);

/// A mesh whose gateway takes `admin` for an administrator.
async fn with_admin(mesh: &mut Mesh, admin: &str) {
    mesh.options.admin_user_ids = vec![user_id(admin)];
    mesh.stop_role(Role::Gateway).await;
    mesh.start_role(Role::Gateway).await;
}

async fn send(mesh: &Mesh, token: &str, conversation: &str, content: &str) -> i64 {
    let body = json!({"client_id": content, "content": content});
    let sent = mesh.api.post(&format!("/api/conversations/{conversation}/messages"), Some(token), body).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    sent.body["message"]["seq"].as_i64().unwrap()
}

async fn report(mesh: &Mesh, token: &str, conversation: &str, seq: i64, reason: &str) -> soulchat_testkit::Response {
    let path = format!("/api/conversations/{conversation}/messages/{seq}/report");
    mesh.api.post(&path, Some(token), json!({"reason": reason})).await
}

async fn resolve(mesh: &Mesh, token: &str, report: &str, body: Value) -> soulchat_testkit::Response {
    mesh.api.post(&format!("/api/admin/reports/{report}/resolve"), Some(token), body).await
}

fn in_an_hour() -> String {
    soulchat_subjects::time::rfc3339_ms(now_ms() + 3_600_000)
}

async fn members_report_and_admins_resolve(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let admin = token(&mesh.api.register("admin", PASSWORD).await);
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let eve = token(&mesh.api.register("eve", PASSWORD).await);
    with_admin(&mut mesh, &admin).await;
    let group =
        mesh.api.post("/api/conversations", Some(&alice), json!({"name": "g", "members": ["bob", "carol"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let spam = send(&mesh, &bob, &group, "buy now").await;
    let rude = send(&mesh, &bob, &group, "rude words").await;
    let worse = send(&mesh, &bob, &group, "worse words").await;

    // A member reports: 201 {report}, open, with the message.
    let first = report(&mesh, &carol, &group, spam, "  spam  ").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let r = &first.body["report"];
    assert_eq!(
        (r["status"].as_str(), r["reporter"].as_str(), r["author"].as_str(), r["reason"].as_str()),
        (Some("open"), Some("carol"), Some("bob"), Some("spam"))
    );
    assert_eq!((r["message_seq"].as_i64(), r["message"]["content"].as_str()), (Some(spam), Some("buy now")));
    assert!(r["resolved_at"].is_null());
    let spam_report = r["id"].as_str().unwrap().to_owned();

    // Refusals name the field.
    let stranger = report(&mesh, &eve, &group, spam, "spam").await;
    assert_eq!((stranger.status, stranger.error("conversation")), (404, Some("not found")));
    let twice = report(&mesh, &carol, &group, spam, "again").await;
    assert_eq!((twice.status, twice.error("report")), (409, Some("has already been taken")));
    let own = report(&mesh, &bob, &group, spam, "oops").await;
    assert_eq!((own.status, own.error("message")), (422, Some("is your own")));
    let blank = report(&mesh, &carol, &group, rude, " ").await;
    assert_eq!((blank.status, blank.error("reason")), (422, Some("can't be blank")));
    let long = report(&mesh, &carol, &group, rude, &"x".repeat(1001)).await;
    assert_eq!(long.status, 422, "{:?}", long.body);
    assert!(long.error("reason").is_some_and(|e| e.starts_with("is too long")), "{:?}", long.body);
    let missing = report(&mesh, &carol, &group, 999, "gone").await;
    assert_eq!((missing.status, missing.error("message")), (404, Some("not found")));
    let no_body =
        mesh.api.post(&format!("/api/conversations/{group}/messages/{rude}/report"), Some(&carol), json!({})).await;
    assert_eq!((no_body.status, no_body.error("reason")), (422, Some("can't be blank")));

    assert_eq!(report(&mesh, &alice, &group, spam, "spam too").await.status, 201);
    let rude_report =
        report(&mesh, &carol, &group, rude, "rude").await.body["report"]["id"].as_str().unwrap().to_owned();
    let worse_report =
        report(&mesh, &alice, &group, worse, "worse").await.body["report"]["id"].as_str().unwrap().to_owned();

    // Administrators only; open reports, oldest first, paged.
    let refused = mesh.api.get_as("/api/admin/reports", &alice).await;
    assert_eq!((refused.status, refused.error("user")), (403, Some("is not an administrator")));
    let page = mesh.api.get_as("/api/admin/reports?limit=3", &admin).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let reasons: Vec<&str> =
        page.body["reports"].as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["spam", "spam too", "rude"]);
    let cursor = page.body["next_cursor"].as_str().expect("a next page").to_owned();
    let rest = mesh.api.get_as(&format!("/api/admin/reports?limit=3&cursor={cursor}"), &admin).await;
    assert_eq!(rest.body["reports"][0]["message"]["content"], "worse words", "{:?}", rest.body);
    assert!(rest.body["next_cursor"].is_null());

    // Delete: the message goes (live to the members) and both reports of it are resolved.
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }
    let not_admin = resolve(&mesh, &alice, &spam_report, json!({"action": "dismiss"})).await;
    assert_eq!(not_admin.status, 403);
    let bad = resolve(&mesh, &admin, &spam_report, json!({"action": "ban"})).await;
    assert_eq!((bad.status, bad.error("action")), (422, Some("must be delete, dismiss or suspend")));
    let unknown = resolve(&mesh, &admin, "no-such-report", json!({"action": "dismiss"})).await;
    assert_eq!((unknown.status, unknown.error("report")), (404, Some("not found")));
    let deleted = resolve(&mesh, &admin, &spam_report, json!({"action": "delete"})).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    let r = &deleted.body["report"];
    assert_eq!((r["status"].as_str(), r["message"]["deleted"].as_bool()), (Some("deleted"), Some(true)));
    assert!(r["resolved_at"].is_string());
    assert_eq!(alice_ws.next_of("message_deleted").await["message_seq"], spam);
    let again = resolve(&mesh, &admin, &spam_report, json!({"action": "dismiss"})).await;
    assert_eq!((again.status, again.error("report")), (409, Some("is already resolved")));

    // Dismiss: the message stays. Of two resolving at once, one does it and the other is told.
    let (first, second) = tokio::join!(
        resolve(&mesh, &admin, &rude_report, json!({"action": "dismiss"})),
        resolve(&mesh, &admin, &rude_report, json!({"action": "dismiss"})),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{:?} {:?}", first.body, second.body);
    let dismissed = if first.status == 200 { first } else { second };
    assert_eq!(dismissed.body["report"]["status"], "dismissed", "{:?}", dismissed.body);
    let history = mesh.api.get_as(&format!("/api/conversations/{group}/messages"), &alice).await;
    let contents: Vec<&str> =
        history.body["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(contents.contains(&"rude words") && !contents.contains(&"buy now"), "{contents:?}");

    // Suspend: refused without a future `until` (the report stays open), then the author is out.
    let past = resolve(
        &mesh,
        &admin,
        &worse_report,
        json!({"action": "suspend", "until": "2020-01-01T00:00:00Z", "reason": "worse"}),
    )
    .await;
    assert_eq!((past.status, past.error("until")), (422, Some("must be in the future")));
    let no_until = resolve(&mesh, &admin, &worse_report, json!({"action": "suspend", "reason": "worse"})).await;
    assert_eq!((no_until.status, no_until.error("until")), (422, Some("can't be blank")));
    let no_reason = resolve(&mesh, &admin, &worse_report, json!({"action": "suspend", "until": in_an_hour()})).await;
    assert_eq!((no_reason.status, no_reason.error("reason")), (422, Some("can't be blank")));
    assert_eq!(mesh.api.get_as("/api/admin/reports", &admin).await.body["reports"].as_array().unwrap().len(), 1);
    let suspended =
        resolve(&mesh, &admin, &worse_report, json!({"action": "suspend", "until": in_an_hour(), "reason": "worse"}))
            .await;
    assert_eq!(suspended.body["report"]["status"], "suspended", "{:?}", suspended.body);
    let (_, closed) = bob_ws.closed_within(Duration::from_secs(10)).await;
    assert!(matches!(closed, Closed::Code(4401, _)), "{closed:?}");
    assert_eq!(mesh.api.get_as("/api/user", &bob).await.status, 401);
    let login = mesh.api.login("bob@example.com", PASSWORD).await;
    assert_eq!(login.status, 403, "{:?}", login.body);
    assert!(login.error("account").is_some_and(|e| e.starts_with("is suspended until ")), "{:?}", login.body);
    assert!(mesh.api.get_as("/api/admin/reports", &admin).await.body["reports"].as_array().unwrap().is_empty());
    mesh.shutdown().await;
}

async fn admins_suspend_accounts(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let admin = token(&mesh.api.register("admin", PASSWORD).await);
    let bob_user = mesh.api.register("bob", PASSWORD).await;
    let bob = token(&bob_user);
    let refresh = bob_user["refresh_token"].as_str().unwrap().to_owned();
    with_admin(&mut mesh, &admin).await;
    let suspend = |body: Value, who: &'static str| {
        let (api, admin, bob) = (&mesh.api, admin.clone(), bob.clone());
        async move {
            let token = if who == "admin" { admin } else { bob };
            api.post("/api/admin/users/bob/suspend", Some(&token), body).await
        }
    };

    // Refusals name the field.
    let not_admin = suspend(json!({"until": in_an_hour(), "reason": "x"}), "bob").await;
    assert_eq!((not_admin.status, not_admin.error("user")), (403, Some("is not an administrator")));
    let nobody = mesh
        .api
        .post("/api/admin/users/nobody/suspend", Some(&admin), json!({"until": in_an_hour(), "reason": "x"}))
        .await;
    assert_eq!((nobody.status, nobody.error("user")), (404, Some("not found")));
    for (body, field) in [
        (json!({"reason": "x"}), "until"),
        (json!({"until": "next week", "reason": "x"}), "until"),
        (json!({"until": "2020-01-01T00:00:00Z", "reason": "x"}), "until"),
        (json!({"until": in_an_hour(), "reason": ""}), "reason"),
        (json!({"until": in_an_hour(), "reason": "x".repeat(1001)}), "reason"),
    ] {
        let r = suspend(body.clone(), "admin").await;
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert!(r.error(field).is_some(), "{body}: {:?}", r.body);
    }
    assert_eq!(mesh.api.get_as("/api/user", &bob).await.status, 200, "nothing happened yet");

    // Suspended: the socket closes, tokens stop working, login answers 403 until then.
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    bob_ws.send(json!({"type": "ping"})).await;
    bob_ws.next_of("pong").await;
    let until = soulchat_subjects::time::rfc3339_ms(now_ms() + 3_000);
    let done = suspend(json!({"until": until, "reason": "cooling off"}), "admin").await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["suspension"], json!({"username": "bob", "until": until, "reason": "cooling off"}));
    let (_, closed) = bob_ws.closed_within(Duration::from_secs(10)).await;
    assert!(matches!(closed, Closed::Code(4401, _)), "{closed:?}");
    let current = mesh.api.get_as("/api/user", &bob).await;
    assert_eq!((current.status, current.error("token")), (401, Some("has been revoked")));
    let refreshed = mesh.api.post("/api/users/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(refreshed.status, 401, "{:?}", refreshed.body);
    let login = mesh.api.login("bob@example.com", PASSWORD).await;
    assert_eq!((login.status, login.error("account")), (403, Some(format!("is suspended until {until}").as_str())));
    let wrong = mesh.api.login("bob@example.com", "not the password").await;
    assert_eq!(wrong.status, 401, "a wrong password learns nothing of the suspension");
    let audited = audited_suspension(&mesh).await;
    assert_eq!(audited.username, "bob");
    assert_eq!(audited.detail, format!("until {until} by {}: cooling off", user_id(&admin)));

    // Once it has passed, login works again.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let back = mesh.api.login("bob@example.com", PASSWORD).await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    mesh.shutdown().await;
}

/// The audit log's first `account_suspended` event (it is relayed after the commit).
async fn audited_suspension(mesh: &Mesh) -> soulchat_subjects::audit::AuditEvent {
    let js = async_nats::jetstream::new(mesh.client().await);
    let filter = audit::Filter { kind: Some("account_suspended".into()), ..Default::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(entry) = audit::read(&js, &filter).await.expect("reading the audit stream").into_iter().next() {
            return entry.event;
        }
        assert!(tokio::time::Instant::now() < deadline, "no account_suspended in the audit log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn moderation_over_nats(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let (alice_id, bob_id) = (user_id(&alice), user_id(&bob));
    let opened = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let direct = opened.body["conversation"]["id"].as_str().unwrap().to_owned();
    let seq = send(&mesh, &bob, &direct, "hello").await;

    let gateway = Caller::new(mesh.client_as(Identity::Gateway).await, Duration::from_secs(5));
    let as_alice = CallContext::internal().with_user(alice_id.clone());
    let request = cm::ReportRequest { conversation_id: direct.clone(), seq, reason: "nats".into() };
    let reported = gateway.call::<chat::Report>(&as_alice, &request).await.unwrap().report.unwrap();
    assert_eq!((reported.author_id.as_str(), reported.status.as_str()), (bob_id.as_str(), "open"));
    assert_eq!(reported.message.unwrap().content, "hello");
    let list = gateway.call::<chat::ListReports>(&as_alice, &cm::ListReportsRequest::default()).await.unwrap();
    assert_eq!(list.reports.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [reported.id.as_str()]);

    // The chat worker may suspend (resolving a report); the gateway may too.
    let chat_role = Caller::new(mesh.client_as(Identity::Chat).await, Duration::from_secs(5));
    let past = um::SuspendRequest { user_id: bob_id.clone(), until_ms: now_ms() - 1, reason: "x".into() };
    let refused = chat_role.call::<user::Suspend>(&CallContext::internal(), &past).await;
    let Err(CallError::Service(refused)) = refused else { panic!("a past until: {refused:?}") };
    assert!(refused.fields.contains_key("until"), "{refused:?}");

    let request = cm::ResolveReportRequest {
        id: reported.id.clone(),
        action: "suspend".into(),
        until_ms: now_ms() + 60_000,
        reason: "over nats".into(),
    };
    let resolved = gateway.call::<chat::ResolveReport>(&as_alice, &request).await.unwrap().report.unwrap();
    assert_eq!((resolved.status.as_str(), resolved.resolved_by.as_str()), ("suspended", alice_id.as_str()));
    let login = mesh.api.login("bob@example.com", PASSWORD).await;
    assert_eq!(login.status, 403, "{:?}", login.body);

    let unsuspend_soon =
        um::SuspendRequest { user_id: bob_id.clone(), until_ms: now_ms() + 500, reason: "done".into() };
    let reply = gateway.call::<user::Suspend>(&CallContext::internal(), &unsuspend_soon).await.unwrap();
    assert_eq!((reply.username.as_str(), reply.reason.as_str()), ("bob", "done"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(mesh.api.login("bob@example.com", PASSWORD).await.status, 200, "a later suspension replaces one");
    mesh.shutdown().await;
}
