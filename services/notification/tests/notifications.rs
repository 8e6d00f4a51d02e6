//! The notification worker against real components: a private nats-server and every worker
//! (soulchat-testkit), a real SMTP receiver, and local HTTP endpoints playing the push service
//! (which decrypts what it gets) and the SMS provider.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use serde_json::{Value, json};
use soulchat_notification::Config;
use soulchat_subjects::headers::DELIVERY_ATTEMPTS;
use soulchat_subjects::notification::messages::*;
use soulchat_subjects::notification::{self};
use soulchat_subjects::{CallContext, Format, headers, streams, wire};
use soulchat_testkit::{Backend, Endpoint, Mesh, Role, SmtpServer, each_backend};
use support::*;

/// The first live notification on `subscriber` within 10 s: protobuf, which the gateway renders
/// into the socket's `notification` frame.
async fn live_notification(subscriber: &mut async_nats::Subscriber) -> Notification {
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("a live notification within 10 s")
        .unwrap();
    let content_type =
        message.headers.as_ref().and_then(|h| h.get(headers::CONTENT_TYPE)).map(|v| v.as_str().to_owned());
    assert_eq!(content_type.as_deref(), Some(wire::PROTOBUF));
    Format::Protobuf.decode(&message.payload).unwrap()
}

async fn in_app_list_and_read(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let caller = caller(&mesh).await;
    let (_alice_token, alice) = register(&mesh, "alice").await;
    let (bob_token, bob) = register(&mesh, "bob").await;
    notification_of(&caller, &alice, "welcome").await;

    let mut live = mesh.client().await.subscribe(streams::deliver(&alice)).await.unwrap();
    let r = mesh.api.post("/api/profiles/alice/follow", Some(&bob_token), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let followed = notification_of(&caller, &alice, "follower").await;
    assert_eq!(followed.data["username"], "bob");
    assert_eq!(followed.body, "bob started following you");

    // The live notification is the stored one, for the gateway to render.
    let sent = live_notification(&mut live).await;
    assert_eq!(sent.id, followed.id);
    assert_eq!(sent.kind, "follower");
    assert!(!sent.read);
    assert_eq!(sent.data["username"], "bob");
    assert_eq!(sent.created_at_ms, followed.created_at_ms);

    // Newest first, with the unread count; paged by cursor.
    let all = list(&caller, &alice, false).await;
    let kinds: Vec<&str> = all.notifications.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["follower", "welcome"]);
    assert_eq!(all.unread_count, 2);
    let first = caller
        .call::<notification::List>(&as_user(&alice), &ListRequest { limit: Some(1), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(first.notifications.len(), 1);
    assert!(!first.next_cursor.is_empty());
    let second = caller
        .call::<notification::List>(
            &as_user(&alice),
            &ListRequest { limit: Some(1), cursor: first.next_cursor.clone(), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(second.notifications[0].kind, "welcome");
    assert_eq!(second.next_cursor, "");
    let bad = caller
        .call::<notification::List>(&as_user(&alice), &ListRequest { limit: Some(101), ..Default::default() })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("limit"), "{bad}");

    // Bob sees only his own, and marking Alice's changes nothing.
    let bobs = list(&caller, &bob, false).await;
    assert!(bobs.notifications.iter().all(|n| n.id != followed.id));
    caller
        .call::<notification::MarkRead>(&as_user(&bob), &MarkReadRequest { ids: vec![followed.id.clone()], all: false })
        .await
        .unwrap();
    assert_eq!(list(&caller, &alice, true).await.notifications.len(), 2);

    // Alice marks one, then all.
    caller
        .call::<notification::MarkRead>(
            &as_user(&alice),
            &MarkReadRequest { ids: vec![followed.id.clone()], all: false },
        )
        .await
        .unwrap();
    let unread = list(&caller, &alice, true).await;
    assert_eq!(unread.unread_count, 1);
    assert_eq!(unread.notifications.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>(), ["welcome"]);
    assert!(list(&caller, &alice, false).await.notifications[0].read);
    caller.call::<notification::MarkRead>(&as_user(&alice), &MarkReadRequest { ids: vec![], all: true }).await.unwrap();
    assert_eq!(list(&caller, &alice, true).await.unread_count, 0);
    assert_eq!(list(&caller, &bob, true).await.unread_count, 1, "bob's welcome is still unread");
    mesh.shutdown().await;
}

async fn alerts_are_stored_once_and_broadcast(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let caller = caller(&mesh).await;
    let (_, alice) = register(&mesh, "alice").await;
    let (_, bob) = register(&mesh, "bob").await;
    let mut broadcast = mesh.client().await.subscribe(streams::BROADCAST).await.unwrap();
    let request = AlertRequest { title: "Maintenance".into(), body: "Down at 02:00 UTC".into() };
    let alert = caller.call::<notification::Alert>(&as_user(&alice), &request).await.unwrap();
    assert_eq!(alert.kind, "alert");

    let sent = live_notification(&mut broadcast).await;
    assert_eq!(sent.id, alert.id);
    assert_eq!(sent.title, "Maintenance");
    assert_eq!(sent.kind, "alert");

    assert_eq!(mesh.strings(Role::Notification, "SELECT id FROM alerts").await, vec![alert.id.clone()]);
    for user in [&alice, &bob] {
        let listed = list(&caller, user, false).await;
        assert_eq!(listed.notifications[0].id, alert.id, "the newest for every user");
        assert_eq!(listed.unread_count, 2);
    }
    caller
        .call::<notification::MarkRead>(&as_user(&alice), &MarkReadRequest { ids: vec![alert.id.clone()], all: false })
        .await
        .unwrap();
    assert!(list(&caller, &alice, false).await.notifications[0].read);
    assert!(!list(&caller, &bob, false).await.notifications[0].read, "read state is per user");
    assert!(list(&caller, &alice, true).await.notifications.iter().all(|n| n.id != alert.id));

    let blank = AlertRequest { title: " ".into(), body: "x".into() };
    assert!(caller.call::<notification::Alert>(&as_user(&alice), &blank).await.is_err());
    mesh.shutdown().await;
}

/// Every channel configured against local servers.
async fn channel_config(smtp: &SmtpServer, push: &Endpoint, sms: &Endpoint) -> Config {
    let _ = push;
    Config {
        smtp_url: Some(smtp.url()),
        mail_from: Some("SoulChat <noreply@soulchat.test>".into()),
        vapid_private_key: Some(vapid_key()),
        vapid_subject: Some("mailto:ops@soulchat.test".into()),
        sms_url: Some(format!("{}/sms", sms.base)),
        sms_token: Some("sms-secret".into()),
        public_url: Some("https://chat.soulchat.test".into()),
        delivery_attempts: Some(3),
        retry_backoff: Some(Duration::from_millis(200)),
        allow_insecure_push: true,
    }
}

/// Verifies the user's email through the user worker (only verified addresses get notification
/// email) and waits until this worker has heard of it.
async fn verify_email(mesh: &Mesh, caller: &soulchat_subjects::Caller, smtp: &SmtpServer, user_id: &str) {
    use soulchat_subjects::user::{
        self,
        messages::{RequestEmailVerificationRequest, VerifyEmailRequest},
    };
    caller
        .call::<user::RequestEmailVerification>(&as_user(user_id), &RequestEmailVerificationRequest {})
        .await
        .unwrap();
    let mail = smtp.next().await;
    let text = &mail.bodies()[0].1;
    let start = text.find("token=").unwrap() + "token=".len();
    let token: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    caller.call::<user::VerifyEmail>(&CallContext::internal(), &VerifyEmailRequest { token }).await.unwrap();
    let query = format!("SELECT email FROM contacts WHERE user_id = '{user_id}' AND email IS NOT NULL");
    for _ in 0..100 {
        if !mesh.strings(Role::Notification, &query).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the notification worker never learned the verified email");
}

async fn push_email_and_sms_are_delivered(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let (smtp, push, sms) = (SmtpServer::start().await, Endpoint::start(201).await, Endpoint::start(200).await);
    start_worker(&mut mesh, channel_config(&smtp, &push, &sms).await).await;
    let caller = caller(&mesh).await;
    let (_, alice) = register(&mesh, "alice").await;
    let (bob_token, _) = register(&mesh, "bob").await;
    verify_email(&mesh, &caller, &smtp, &alice).await;

    let browser = Browser::new();
    let endpoint = format!("{}/push/alice-laptop", push.base);
    let subscribe = SubscribePushRequest { endpoint: endpoint.clone(), p256dh: browser.p256dh(), auth: browser.auth() };
    let subscription = caller.call::<notification::SubscribePush>(&as_user(&alice), &subscribe).await.unwrap();
    assert!(!subscription.id.is_empty());
    let bad = SubscribePushRequest { endpoint: "ftp://x".into(), p256dh: "x".into(), auth: "y".into() };
    let refused = caller.call::<notification::SubscribePush>(&as_user(&alice), &bad).await.unwrap_err();
    assert!(refused.to_string().contains("endpoint"), "{refused}");

    let r = mesh.api.post("/api/profiles/alice/follow", Some(&bob_token), json!({})).await;
    assert_eq!(r.status, 200);

    // Web Push: encrypted for the subscription (the endpoint decrypts it), signed with VAPID.
    let pushed = push.next().await;
    assert_eq!(pushed.path, "/push/alice-laptop");
    assert_eq!(pushed.headers["content-encoding"], "aes128gcm");
    // VAPID (RFC 8292): a token for the push service's origin, with our contact.
    let vapid = pushed.headers["authorization"].to_str().unwrap();
    let token = vapid.strip_prefix("vapid t=").unwrap().split(',').next().unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], push.base);
    assert_eq!(claims["sub"], "mailto:ops@soulchat.test");
    // Browsers subscribe with the key the gateway publishes: the one that signs.
    let published = mesh.api.get("/api/push/public-key").await;
    assert_eq!(published.status, 200, "{:?}", published.body);
    let signing_key = vapid.split("k=").nth(1).unwrap().trim();
    assert_eq!(published.body["public_key"], signing_key);
    let point = URL_SAFE_NO_PAD.decode(signing_key).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let payload: Value = serde_json::from_slice(&browser.decrypt(&pushed.body)).unwrap();
    assert_eq!(payload["kind"], "follower");
    assert_eq!(payload["title"], "New follower");
    assert_eq!(payload["body"], "bob started following you");

    // Email to the account's address, plain text and HTML.
    let mail = smtp.next().await;
    assert_eq!(mail.to, vec!["alice@example.com"]);
    assert_eq!(mail.from, "noreply@soulchat.test");
    assert_eq!(mail.header("Subject").as_deref(), Some("New follower"));
    assert!(mail.header("From").unwrap().contains("noreply@soulchat.test"));
    assert_eq!(mail.header("To").as_deref(), Some("alice@example.com"));
    assert!(mail.header("Content-Type").unwrap().starts_with("multipart/alternative"));
    let bodies = mail.bodies();
    assert_eq!(
        bodies[0],
        ("text/plain".into(), "bob started following you\n\nOpen SoulChat: https://chat.soulchat.test".into())
    );
    assert_eq!(bodies[1].0, "text/html");
    assert_eq!(
        bodies[1].1,
        "<h1>New follower</h1><p>bob started following you</p><p><a href=\"https://chat.soulchat.test\">Open SoulChat</a></p>"
    );

    // Account email: always sent, both bodies.
    let request = SendEmailRequest {
        to: "carol@example.com".into(),
        subject: "Verify your email".into(),
        text: "Open https://chat.soulchat.test/verify?token=abc".into(),
        html: "<p><a href=\"https://chat.soulchat.test/verify?token=abc\">Verify</a></p>".into(),
        user_id: Some(alice.clone()),
    };
    let queued = caller.call::<notification::SendEmail>(&as_user(&alice), &request).await.unwrap();
    assert!(!queued.delivery_id.is_empty());
    let mail = smtp.next().await;
    assert_eq!(mail.to, vec!["carol@example.com"]);
    assert_eq!(mail.header("Subject").as_deref(), Some("Verify your email"));
    let bodies = mail.bodies();
    assert_eq!(bodies[0], ("text/plain".into(), request.text.clone()));
    assert_eq!(bodies[1], ("text/html".into(), request.html.clone()));
    assert!(mail.header("Message-ID").unwrap().contains(&queued.delivery_id));

    // Account SMS through the provider, with its token.
    let request = SendSmsRequest { to: "+4915112345678".into(), text: "Your code is 123456".into(), user_id: None };
    caller.call::<notification::SendSms>(&as_user(&alice), &request).await.unwrap();
    let sent = sms.next().await;
    assert_eq!(sent.headers["authorization"], "Bearer sms-secret");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body, json!({"to": "+4915112345678", "text": "Your code is 123456"}));

    // The push service says the subscription is gone: it is deleted.
    push.answer(410);
    mesh.api.delete_as("/api/profiles/alice/follow", &bob_token).await;
    mesh.api.post("/api/profiles/alice/follow", Some(&bob_token), json!({})).await;
    assert_eq!(push.next().await.path, "/push/alice-laptop");
    eventually(|| async {
        mesh.strings(Role::Notification, "SELECT id FROM push_subscriptions").await.is_empty().then_some(())
    })
    .await;
    mesh.shutdown().await;
}

async fn failed_deliveries_are_dead_lettered_and_replayed(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let (smtp, push, sms) = (SmtpServer::start().await, Endpoint::start(201).await, Endpoint::start(503).await);
    start_worker(&mut mesh, channel_config(&smtp, &push, &sms).await).await;
    let caller = caller(&mesh).await;
    let (_, alice) = register(&mesh, "alice").await;

    let request = SendSmsRequest { to: "+4915112345678".into(), text: "Code 654321".into(), user_id: Some(alice) };
    let queued = caller.call::<notification::SendSms>(&CallContext::internal(), &request).await.unwrap();
    // Three attempts (the configured N), then nothing more.
    for _ in 0..3 {
        sms.next().await;
    }
    assert!(sms.next_within(Duration::from_secs(2)).await.is_none(), "no fourth attempt");

    let js = async_nats::jetstream::new(mesh.client().await);
    let dead = eventually(|| async {
        let info = js.get_stream(streams::DEAD_LETTER_STREAM).await.unwrap().info().await.unwrap().clone();
        (info.state.messages == 1).then_some(info.state.last_sequence)
    })
    .await;
    let dlq = js.get_stream(streams::DEAD_LETTER_STREAM).await.unwrap();
    let dead = dlq.get_raw_message(dead).await.unwrap();
    assert_eq!(dead.subject.as_str(), streams::dead_letter("sms"));
    assert_eq!(dead.headers.get(DELIVERY_ATTEMPTS).unwrap().as_str(), "3");
    let delivery: Delivery = Format::of(Some(&dead.headers)).decode(&dead.payload).unwrap();
    assert_eq!(delivery.id, queued.delivery_id);
    assert_eq!(delivery.text, "Code 654321");
    // The work queue let go of it.
    let queue = js.get_stream(streams::DELIVERIES_STREAM).await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(queue, 0);

    // The provider is back; the operator replays the dead letter as it is.
    sms.answer(200);
    let mut replay = async_nats::HeaderMap::new();
    replay.insert(headers::CONTENT_TYPE, dead.headers.get(headers::CONTENT_TYPE).unwrap().as_str());
    js.publish_with_headers(streams::deliveries("sms"), replay, dead.payload.clone()).await.unwrap().await.unwrap();
    let sent = sms.next().await;
    assert_eq!(serde_json::from_slice::<Value>(&sent.body).unwrap()["text"], "Code 654321");

    // A relay's transient refusal is retried too, and the retry arrives.
    smtp.refuse_next(1);
    let request = SendEmailRequest {
        to: "erin@example.com".into(),
        subject: "Reset your password".into(),
        text: "https://soulchat.test/reset?token=y".into(),
        ..Default::default()
    };
    caller.call::<notification::SendEmail>(&CallContext::internal(), &request).await.unwrap();
    let mail = smtp.next().await;
    assert_eq!(mail.to, vec!["erin@example.com"]);
    assert_eq!(mail.bodies(), vec![("text/plain".to_owned(), request.text.clone())]);
    let js_stats = mesh.client().await.request("$SRV.STATS.soulchat-notification", "".into()).await.unwrap();
    let stats: Value = serde_json::from_slice(&js_stats.payload).unwrap();
    let data = &stats["endpoints"][0]["data"];
    assert_eq!(data["email"]["retried"], 1, "{stats}");
    assert_eq!(data["sms"]["dead_lettered"], 1, "{stats}");
    assert_eq!(data["sms"]["retried"], 2, "{stats}");
    mesh.shutdown().await;
}

async fn preferences_and_mutes_are_honoured(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let (smtp, push, sms) = (SmtpServer::start().await, Endpoint::start(201).await, Endpoint::start(200).await);
    start_worker(&mut mesh, channel_config(&smtp, &push, &sms).await).await;
    let caller = caller(&mesh).await;
    let (alice_token, alice) = register(&mesh, "alice").await;
    let (bob_token, bob) = register(&mesh, "bob").await;
    let (carol_token, _) = register(&mesh, "carol").await;

    let defaults =
        caller.call::<notification::GetPreferences>(&as_user(&bob), &GetPreferencesRequest {}).await.unwrap();
    assert_eq!((defaults.in_app, defaults.push, defaults.email, defaults.sms), (true, true, true, false));

    // Email off: the follower notification is stored, no email goes out.
    let prefs = Preferences { email: false, ..defaults.clone() };
    caller.call::<notification::PutPreferences>(&as_user(&bob), &prefs).await.unwrap();
    mesh.api.post("/api/profiles/bob/follow", Some(&alice_token), json!({})).await;
    notification_of(&caller, &bob, "follower").await;
    assert!(smtp.next_within(Duration::from_secs(2)).await.is_none(), "email was opted out");

    // A direct message to an offline user notifies; once muted, it does not.
    let r = mesh.api.post("/api/conversations/direct", Some(&alice_token), json!({"username": "bob"})).await;
    assert!(r.status == 201 || r.status == 200, "{:?}", r.body);
    let conversation = r.body["conversation"]["id"].as_str().unwrap().to_owned();
    let send = |token: String, client_id: &'static str, content: &'static str| {
        let api = &mesh.api;
        let path = format!("/api/conversations/{conversation}/messages");
        async move {
            let r = api.post(&path, Some(&token), json!({"client_id": client_id, "content": content})).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
        }
    };
    send(alice_token.clone(), "m1", "hello bob").await;
    let message = notification_of(&caller, &bob, "message").await;
    assert_eq!(message.body, "hello bob");
    assert_eq!(message.data["conversation_id"], conversation);
    assert_eq!(message.data["username"], "alice");

    let muted = Preferences { muted_conversations: vec![conversation.clone()], ..prefs.clone() };
    let stored = caller.call::<notification::PutPreferences>(&as_user(&bob), &muted).await.unwrap();
    assert_eq!(stored.muted_conversations, vec![conversation.clone()]);
    send(alice_token.clone(), "m2", "still there?").await;

    // An online recipient is not notified either (the gateway's presence entry says so).
    let js = async_nats::jetstream::new(mesh.client().await);
    let presence = js.get_key_value(streams::PRESENCE_BUCKET).await.unwrap();
    presence.put(&alice, json!({"status": "online", "last_seen_ms": 0}).to_string().into()).await.unwrap();
    send(bob_token.clone(), "m3", "hi alice").await;

    // In-app off: nothing stored for alice's new follower.
    caller
        .call::<notification::PutPreferences>(&as_user(&alice), &Preferences { in_app: false, ..defaults.clone() })
        .await
        .unwrap();
    mesh.api.post("/api/profiles/alice/follow", Some(&carol_token), json!({})).await;
    // Follow events are handled in order: once carol's follow of bob shows, alice's was handled.
    mesh.api.post("/api/profiles/bob/follow", Some(&carol_token), json!({})).await;
    eventually(|| async {
        let followers = list(&caller, &bob, false).await.notifications.into_iter().filter(|n| n.kind == "follower");
        (followers.count() == 2).then_some(())
    })
    .await;

    // A group: carol is added by alice, and then mentioned.
    let r = mesh
        .api
        .post(
            "/api/conversations",
            Some(&alice_token),
            json!({"name": "Climbers", "description": "", "members": ["carol"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let group = r.body["conversation"]["id"].as_str().unwrap().to_owned();
    let carol = user_id(&carol_token);
    let added = notification_of(&caller, &carol, "added_to_group").await;
    assert_eq!(added.body, "alice added you to Climbers");
    let path = format!("/api/conversations/{group}/messages");
    let r = mesh.api.post(&path, Some(&alice_token), json!({"client_id": "g1", "content": "ready @carol?"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mention = notification_of(&caller, &carol, "mention").await;
    assert_eq!(mention.title, "alice mentioned you");
    assert_eq!(mention.body, "ready @carol?");

    // By now every earlier event was handled (the chat consumer is ordered): none notified.
    let bobs: Vec<String> = list(&caller, &bob, false).await.notifications.into_iter().map(|n| n.body).collect();
    assert!(!bobs.contains(&"still there?".to_owned()), "muted: {bobs:?}");
    let alices = list(&caller, &alice, false).await.notifications;
    assert!(alices.iter().all(|n| n.kind != "message"), "online: {alices:?}");
    assert!(alices.iter().all(|n| n.kind != "follower"), "in-app off: {alices:?}");
    mesh.shutdown().await;
}

/// SSRF: a subscription's endpoint must be https to a public address, whatever its spelling.
async fn push_endpoints_must_be_public_https(backend: Backend) {
    // The mesh's worker has its default configuration: insecure push is off.
    let mesh = Mesh::start(backend).await;
    let (token, _) = register(&mesh, "alice").await;
    let browser = Browser::new();
    let body =
        |endpoint: &str| json!({"endpoint": endpoint, "keys": {"p256dh": browser.p256dh(), "auth": browser.auth()}});
    let special = "must not point to a loopback, private or other special address";
    for (endpoint, problem) in [
        ("https://127.0.0.1:8443/x", special),
        ("https://169.254.169.254/latest", special),
        ("https://[::1]/x", special),
        ("https://localhost/x", special),
        ("https://[::ffff:10.0.0.1]/x", special),
        ("https://0x7f.1/x", special),
        ("http://push.example/x", "must be an https URL"),
        ("https://push.invalid/x", "has a host that could not be resolved"),
    ] {
        let r = mesh.api.post("/api/push/subscriptions", Some(&token), body(endpoint)).await;
        assert_eq!(r.status, 422, "{endpoint}: {:?}", r.body);
        assert_eq!(r.error("endpoint"), Some(problem), "{endpoint}: {:?}", r.body);
    }
    assert!(mesh.strings(Role::Notification, "SELECT id FROM push_subscriptions").await.is_empty());

    // A public address passes.
    let r = mesh.api.post("/api/push/subscriptions", Some(&token), body("https://[2606:4700:4700::1111]/push/a")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(mesh.strings(Role::Notification, "SELECT endpoint FROM push_subscriptions").await.len(), 1);
    mesh.shutdown().await;
}

/// SSRF at connect time: a stored subscription whose endpoint is, or now resolves to, a
/// forbidden address is never connected to; its delivery is dead-lettered at once and the
/// subscription deleted.
async fn push_never_connects_to_forbidden_addresses(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let (smtp, push, sms) = (SmtpServer::start().await, Endpoint::start(201).await, Endpoint::start(200).await);
    let insecure = channel_config(&smtp, &push, &sms).await;
    // Loopback is allowed in insecure mode, so these subscriptions get in (as a rebound name
    // would have got in while it still resolved to a public address).
    start_worker(&mut mesh, insecure.clone()).await;
    let caller = caller(&mesh).await;
    let (_, alice) = register(&mesh, "alice").await;
    let (bob_token, _) = register(&mesh, "bob").await;
    // Any connection to this port would wait here to be accepted.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = trap.local_addr().unwrap().port();
    let browser = Browser::new();
    for endpoint in [format!("https://localhost:{port}/by-name"), format!("https://127.0.0.1:{port}/by-address")] {
        let subscribe = SubscribePushRequest { endpoint, p256dh: browser.p256dh(), auth: browser.auth() };
        caller.call::<notification::SubscribePush>(&as_user(&alice), &subscribe).await.unwrap();
    }

    start_worker(&mut mesh, Config { allow_insecure_push: false, ..insecure }).await;
    let r = mesh.api.post("/api/profiles/alice/follow", Some(&bob_token), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let js = async_nats::jetstream::new(mesh.client().await);
    let (first, last) = eventually(|| async {
        let info = js.get_stream(streams::DEAD_LETTER_STREAM).await.unwrap().info().await.unwrap().clone();
        (info.state.messages == 2).then_some((info.state.first_sequence, info.state.last_sequence))
    })
    .await;
    let dlq = js.get_stream(streams::DEAD_LETTER_STREAM).await.unwrap();
    let mut errors = Vec::new();
    for sequence in first..=last {
        let dead = dlq.get_raw_message(sequence).await.unwrap();
        assert_eq!(dead.subject.as_str(), streams::dead_letter("push"));
        assert_eq!(dead.headers.get(DELIVERY_ATTEMPTS).unwrap().as_str(), "1", "not retried");
        let error = dead.headers.get(headers::DELIVERY_ERROR).unwrap().as_str().to_owned();
        assert!(error.contains("special address"), "{error}");
        errors.push(error);
    }
    errors.sort();
    assert!(errors[0].contains("127.0.0.1:") && errors[0].contains("/by-address"), "{errors:?}");
    assert!(errors[1].contains("localhost:") && errors[1].contains("/by-name"), "{errors:?}");
    eventually(|| async {
        mesh.strings(Role::Notification, "SELECT id FROM push_subscriptions").await.is_empty().then_some(())
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), trap.accept()).await.is_err(),
        "something connected to a forbidden address"
    );

    let stats = mesh.client().await.request("$SRV.STATS.soulchat-notification", "".into()).await.unwrap();
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    let data = &stats["endpoints"][0]["data"];
    assert_eq!(data["push_subscriptions_forbidden"], 2, "{stats}");
    assert_eq!(data["push"]["dead_lettered"], 2, "{stats}");
    assert_eq!(data["push"]["sent"], 0, "{stats}");
    mesh.shutdown().await;
}

async fn unconfigured_channels_are_skipped_visibly(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let caller = caller(&mesh).await;
    let request = SendEmailRequest {
        to: "dave@example.com".into(),
        subject: "Reset your password".into(),
        text: "https://soulchat.test/reset?token=x".into(),
        ..Default::default()
    };
    let skipped = caller.call::<notification::SendEmail>(&CallContext::internal(), &request).await.unwrap();
    assert_eq!(skipped.delivery_id, "", "no SMTP configured: nothing queued");
    let invalid = SendEmailRequest { to: "not an address".into(), ..request };
    let refused = caller.call::<notification::SendEmail>(&CallContext::internal(), &invalid).await.unwrap_err();
    assert!(refused.to_string().contains("to"), "{refused}");

    let client = mesh.client().await;
    let stats = client.request("$SRV.STATS.soulchat-notification", "".into()).await.unwrap();
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    let data = &stats["endpoints"][0]["data"];
    assert_eq!(data["email"]["configured"], false, "{stats}");
    assert_eq!(data["email"]["skipped_unconfigured"], 1, "{stats}");
    assert_eq!(data["push"]["configured"], false);
    let published = mesh.api.get("/api/push/public-key").await;
    assert_eq!(published.status, 404, "no Web Push, no key: {:?}", published.body);
    assert_eq!(published.body["errors"]["push"][0], "not found");
    mesh.shutdown().await;
}

each_backend!(
    unconfigured_channels_are_skipped_visibly,
    in_app_list_and_read,
    alerts_are_stored_once_and_broadcast,
    push_email_and_sms_are_delivered,
    failed_deliveries_are_dead_lettered_and_replayed,
    preferences_and_mutes_are_honoured,
    push_endpoints_must_be_public_https,
    push_never_connects_to_forbidden_addresses,
);
