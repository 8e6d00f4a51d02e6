//! The mesh as operators and other services see it: the NATS service API, JSON requests,
//! events through the outbox, unavailability and graceful drain.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use soulchat_subjects::{Operation, user};
use soulchat_testkit::{Backend, Mesh, Role, each_backend};

use crate::PASSWORD;

each_backend!(user_events_leave_through_the_outbox);

/// Sends `subject` and gathers every answer that arrives within `wait` (a discovery request).
async fn gather(client: &async_nats::Client, subject: &str, wait: Duration) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply(subject.to_owned(), inbox, "".into()).await.unwrap();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await {
        found.push(serde_json::from_slice(&message.payload).unwrap());
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_register_with_the_service_api() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let client = mesh.client().await;
    let infos = gather(&client, "$SRV.INFO", Duration::from_millis(500)).await;
    let names: BTreeSet<&str> = infos.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, soulchat_subjects::SERVICES.iter().map(|s| s.name).collect::<BTreeSet<_>>());
    let user_info = infos.iter().find(|i| i["name"] == "soulchat-user").unwrap();
    let endpoints: Vec<(&str, &str)> = user_info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["subject"].as_str().unwrap(), e["queue_group"].as_str().unwrap()))
        .collect();
    assert!(endpoints.contains(&(user::Register::SUBJECT, "soulchat-user")), "{endpoints:?}");
    assert!(endpoints.contains(&("soulchat.user.v1.login", "soulchat-user")));
    let pings = gather(&client, "$SRV.PING.soulchat-user", Duration::from_millis(300)).await;
    assert_eq!(pings.len(), 1);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_speak_json() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let client = mesh.client().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let body = json!({"username": "oscar", "email": "oscar@example.com", "password": PASSWORD});
    let reply =
        client.request_with_headers(user::Register::SUBJECT, headers.clone(), body.to_string().into()).await.unwrap();
    let answer: Value = serde_json::from_slice(&reply.payload).expect("a JSON answer");
    assert_eq!(answer["user"]["username"], "oscar");
    assert!(answer["session"]["token"].as_str().is_some());

    // An error answers in JSON too, with the service-protocol headers.
    let reply =
        client.request_with_headers(user::Register::SUBJECT, headers.clone(), body.to_string().into()).await.unwrap();
    let h = reply.headers.as_ref().unwrap();
    assert_eq!(h.get("Nats-Service-Error-Code").unwrap().as_str(), "409");
    let error: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error["fields"]["username"]["messages"][0], "has already been taken");

    // Garbage is a 400, not a crash.
    let reply = client.request_with_headers(user::Login::SUBJECT, headers, "{oops".into()).await.unwrap();
    assert_eq!(reply.headers.as_ref().unwrap().get("Nats-Service-Error-Code").unwrap().as_str(), "400");

    // The logged-in call works through the header the gateway would set.
    let mut as_oscar = async_nats::HeaderMap::new();
    as_oscar.insert("Content-Type", "application/json");
    as_oscar.insert("Soulchat-User-Id", answer["user"]["id"].as_str().unwrap());
    let reply = client.request_with_headers(user::GetCurrent::SUBJECT, as_oscar, "{}".into()).await.unwrap();
    let me: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(me["user"]["email"], "oscar@example.com");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_means_503_within_the_deadline() {
    let mut mesh = Mesh::start(Backend::Sqlite).await;
    mesh.stop_role(Role::User).await;
    let started = Instant::now();
    let r = mesh.api.login("anyone@example.com", PASSWORD).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body, json!({"errors": {"service": ["unavailable"]}}));
    assert!(started.elapsed() < mesh.options.request_timeout + Duration::from_secs(1));
    assert_eq!(mesh.api.get("/readyz").await.status, 503);

    mesh.start_role(Role::User).await;
    mesh.api.register("back", PASSWORD).await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let mut mesh = Mesh::start(Backend::Sqlite).await;
    let api = mesh.api.clone();
    let pending = tokio::spawn(async move { api.register("inflight", PASSWORD).await });
    // Registration spends tens of milliseconds hashing; stop the worker meanwhile.
    tokio::time::sleep(Duration::from_millis(15)).await;
    mesh.stop_role(Role::User).await;
    let user = pending.await.expect("the request was answered");
    assert_eq!(user["username"], "inflight");
    mesh.shutdown().await;
}

async fn user_events_leave_through_the_outbox(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let user = mesh.api.register("peggy", PASSWORD).await;
    let t = crate::token(&user);
    mesh.api.put("/api/user", &t, json!({"user": {"username": "margaret"}})).await;
    mesh.api.delete_as("/api/user", &t).await;

    let mut seen = Vec::new();
    for (subject, payload, id) in mesh.events("soulchat.events.user.>", 3).await {
        let event: user::messages::UserEvent = prost::Message::decode(payload).unwrap();
        assert!(id.starts_with("user:"), "{id}");
        seen.push((subject, event.username, event.previous_username));
    }
    assert_eq!(
        seen,
        vec![
            ("soulchat.events.user.created".into(), "peggy".into(), None),
            ("soulchat.events.user.updated".into(), "margaret".into(), Some("peggy".into())),
            ("soulchat.events.user.deleted".into(), "margaret".into(), None),
        ]
    );
    mesh.shutdown().await;
}
