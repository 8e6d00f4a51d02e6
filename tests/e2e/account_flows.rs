//! Contact points and password reset end to end, against a real SMTP server and a local HTTP
//! endpoint playing the SMS provider: the emails and texts arrive with the right headers and
//! bodies, their links and codes work once, and only verified contact points are written to.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use soulchat_testkit::{Backend, Endpoint, Mail, Mesh, Options, SmtpServer, each_backend};

use crate::{PASSWORD, token};

each_backend!(email_verification_link_works_once, phone_verification_by_sms_code, password_reset_ends_every_session);

async fn mesh_with_channels(backend: Backend) -> (Mesh, Arc<SmtpServer>, Endpoint) {
    let smtp = SmtpServer::start().await;
    let sms = Endpoint::start(200).await;
    let mut options = Options::new(backend);
    options.notification = soulchat_notification::Config {
        smtp_url: Some(smtp.url()),
        mail_from: Some("SoulChat <noreply@soulchat.test>".into()),
        sms_url: Some(format!("{}/sms", sms.base)),
        sms_token: Some("sms-secret".into()),
        retry_backoff: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    (Mesh::start_with(options).await, smtp, sms)
}

/// The plain-text and HTML bodies of a mail, checking both exist.
fn bodies(mail: &Mail) -> (String, String) {
    let bodies = mail.bodies();
    let text = bodies.iter().find(|(kind, _)| kind == "text/plain").map(|(_, b)| b.clone()).expect("a text/plain body");
    let html = bodies.iter().find(|(kind, _)| kind == "text/html").map(|(_, b)| b.clone()).expect("a text/html body");
    (text, html)
}

/// The value of `token=` in a link in `body`.
fn token_in(body: &str) -> String {
    let start = body.find("token=").expect("a link with a token") + "token=".len();
    body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn email_verification_link_works_once(backend: Backend) {
    let (mesh, smtp, _sms) = mesh_with_channels(backend).await;
    let vera = token(&mesh.api.register("vera", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    assert_eq!(mesh.api.get_as("/api/user", &vera).await.body["user"]["email_verified"], false);

    // Unverified: a new follower notifies in-app only, no email.
    assert_eq!(mesh.api.post("/api/profiles/vera/follow", Some(&bob), json!({})).await.status, 200);
    assert!(smtp.next_within(Duration::from_secs(1)).await.is_none(), "no email to an unverified address");

    assert_eq!(mesh.api.post("/api/user/email/verify", Some(&vera), json!({})).await.status, 204);
    let mail = smtp.next().await;
    assert_eq!(mail.to, vec!["vera@example.com".to_owned()]);
    assert!(mail.header("Subject").is_some_and(|s| s.contains("Verify")), "{:?}", mail.header("Subject"));
    assert!(mail.header("From").is_some_and(|f| f.contains("noreply@soulchat.test")));
    let (text, html) = bodies(&mail);
    let link_token = token_in(&text);
    assert!(text.contains("http://soulchat.test/api/user/email/verify?token="), "{text}");
    assert_eq!(token_in(&html), link_token, "both bodies carry the same link");

    let verified = mesh.api.get(&format!("/api/user/email/verify?token={link_token}")).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.body["user"]["email_verified"], true);
    let again = mesh.api.get(&format!("/api/user/email/verify?token={link_token}")).await;
    assert_eq!((again.status, again.error("token")), (422, Some("is invalid or expired")), "a link works once");
    assert_eq!(mesh.api.get_as("/api/user", &vera).await.body["user"]["email_verified"], true);

    // Verified: the next follower is told by email too (the notification worker learned of it).
    let carl = token(&mesh.api.register("carl", PASSWORD).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mail = loop {
        assert_eq!(mesh.api.post("/api/profiles/vera/follow", Some(&carl), json!({})).await.status, 200);
        if let Some(mail) = smtp.next_within(Duration::from_secs(2)).await {
            break mail;
        }
        assert_eq!(mesh.api.delete_as("/api/profiles/vera/follow", &carl).await.status, 200);
        assert!(tokio::time::Instant::now() < deadline, "no follower email after verification");
    };
    assert_eq!(mail.to, vec!["vera@example.com".to_owned()]);
    assert!(bodies(&mail).0.contains("carl"));

    // A new address is unverified again.
    let changed = mesh.api.put("/api/user", &vera, json!({"user": {"email": "vera@new.example"}})).await;
    assert_eq!(changed.body["user"]["email_verified"], false);
    mesh.shutdown().await;
}

async fn phone_verification_by_sms_code(backend: Backend) {
    let (mesh, _smtp, sms) = mesh_with_channels(backend).await;
    let pia = token(&mesh.api.register("pia", PASSWORD).await);
    let bad = mesh.api.put("/api/user/phone", &pia, json!({"phone": "12345"})).await;
    assert_eq!(bad.status, 422);
    assert_eq!(mesh.api.put("/api/user/phone", &pia, json!({"phone": "+4915112345678"})).await.status, 204);
    let text = sms.next().await;
    assert_eq!(text.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer sms-secret"));
    let body: serde_json::Value = serde_json::from_slice(&text.body).unwrap();
    assert_eq!(body["to"], "+4915112345678");
    let code: String = body["text"].as_str().unwrap().chars().filter(char::is_ascii_digit).take(6).collect();
    assert_eq!(code.len(), 6);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = mesh.api.post("/api/user/phone/verify", Some(&pia), json!({"code": wrong})).await;
    assert_eq!((refused.status, refused.error("code")), (422, Some("is invalid or expired")));
    assert!(mesh.api.get_as("/api/user", &pia).await.body["user"]["phone"].is_null());
    let verified = mesh.api.post("/api/user/phone/verify", Some(&pia), json!({"code": code})).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.body["user"]["phone"], "+4915112345678");
    let reused = mesh.api.post("/api/user/phone/verify", Some(&pia), json!({"code": code})).await;
    assert_eq!(reused.status, 422, "a code works once");
    mesh.shutdown().await;
}

async fn password_reset_ends_every_session(backend: Backend) {
    let (mesh, smtp, _sms) = mesh_with_channels(backend).await;
    let old = token(&mesh.api.register("rita", PASSWORD).await);
    let unknown = mesh.api.post("/api/users/password/forgot", None, json!({"email": "nobody@example.com"})).await;
    assert_eq!(unknown.status, 204, "the same answer for an unknown address");
    assert!(smtp.next_within(Duration::from_millis(500)).await.is_none());

    assert_eq!(
        mesh.api.post("/api/users/password/forgot", None, json!({"email": "RITA@example.com"})).await.status,
        204
    );
    let mail = smtp.next().await;
    assert!(mail.header("Subject").is_some_and(|s| s.contains("Reset")));
    let (text, html) = bodies(&mail);
    let reset = token_in(&text);
    assert_eq!(token_in(&html), reset);

    let short = mesh.api.post("/api/users/password/reset", None, json!({"token": reset, "password": "short"})).await;
    assert_eq!(short.status, 422);
    let done = mesh
        .api
        .post("/api/users/password/reset", None, json!({"token": reset, "password": "a brand new secret"}))
        .await;
    assert_eq!(done.status, 204, "{:?}", done.body);
    assert_eq!(mesh.api.get_as("/api/user", &old).await.status, 401, "every session ended");
    assert_eq!(mesh.api.login("rita@example.com", PASSWORD).await.status, 401);
    assert_eq!(mesh.api.login("rita@example.com", "a brand new secret").await.status, 200);
    let reused = mesh
        .api
        .post("/api/users/password/reset", None, json!({"token": reset, "password": "another new secret"}))
        .await;
    assert_eq!(reused.status, 422, "a reset link works once");
    mesh.shutdown().await;
}
