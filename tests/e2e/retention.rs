//! Bounded storage. The ids of processed events are forgotten past the horizon, and only then:
//! the notification worker's pruner deletes old ids in batches, keeps recent ones, and a recent
//! event delivered again still changes nothing. The chat worker's resume log drops events past
//! its retention, and a client that missed them loses nothing: resume says so and history has
//! every message.

use std::time::Duration;

use serde_json::json;
use soulchat_runtime::processed::Horizon;
use soulchat_subjects::notification;
use soulchat_subjects::streams::EVENTS_STREAM;
use soulchat_subjects::time::now_ms;
use soulchat_testkit::{Backend, Mesh, Role, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(
    old_processed_event_ids_are_pruned_and_recent_ones_still_deduplicate,
    pruned_chat_events_lose_nothing_a_client_can_ask_for
);

/// More than one prune batch.
const OLD_IDS: usize = 1500;

async fn notifications(mesh: &Mesh, token: &str) -> usize {
    let r = mesh.api.get_as("/api/notifications", token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["notifications"].as_array().expect("a list").len()
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "not within 15 s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn old_processed_event_ids_are_pruned_and_recent_ones_still_deduplicate(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    assert_eq!(mesh.api.post("/api/profiles/bob/follow", Some(&alice), json!({})).await.status, 200);
    eventually("bob's welcome and follower notifications", async || notifications(&mesh, &bob).await == 2).await;
    let recent = mesh.strings(Role::Notification, "SELECT event_id FROM processed_events").await;
    assert!(recent.len() >= 3, "two welcomes and a follow recorded: {recent:?}");

    // Ids processed a day beyond the horizon ago.
    let long_ago = now_ms() - (Horizon::default().get() + Duration::from_secs(24 * 3600)).as_millis() as i64;
    let mut db = mesh.database(Role::Notification).await;
    let mut insert = sqlx::QueryBuilder::<sqlx::Any>::new("INSERT INTO processed_events (event_id, processed_at_ms) ");
    insert.push_values(0..OLD_IDS, |mut row, i| {
        row.push_bind(format!("long-ago-{i}")).push_bind(long_ago);
    });
    insert.build().execute(&mut db).await.expect("old ids inserted");

    // The restarted worker prunes at once; its follow consumer, recreated, is given every
    // follow event again from the stream's start.
    mesh.stop_role(Role::Notification).await;
    let js = async_nats::jetstream::new(mesh.client().await);
    let events = js.get_stream(EVENTS_STREAM).await.expect("the events stream");
    events.delete_consumer(notification::PROFILE_FOLLOWED.durable).await.expect("the follow consumer deleted");
    mesh.start_role(Role::Notification).await;

    let old = "SELECT event_id FROM processed_events WHERE event_id LIKE 'long-ago-%'";
    eventually("the old ids pruned", async || mesh.strings(Role::Notification, old).await.is_empty()).await;
    let kept = mesh.strings(Role::Notification, "SELECT event_id FROM processed_events").await;
    assert!(recent.iter().all(|id| kept.contains(id)), "a recent id was pruned: {recent:?} → {kept:?}");
    assert!(
        mesh.metric("soulchat_processed_events_pruned_total{service=\"soulchat-notification\"}").await
            >= OLD_IDS as f64
    );

    eventually("the follow event delivered again and acknowledged", async || {
        let events = js.get_stream(EVENTS_STREAM).await.expect("the events stream");
        match events.consumer_info(notification::PROFILE_FOLLOWED.durable).await {
            Ok(info) => info.delivered.stream_sequence > 0 && info.num_pending == 0 && info.num_ack_pending == 0,
            Err(_) => false,
        }
    })
    .await;
    assert_eq!(notifications(&mesh, &bob).await, 2, "the redelivered follow made no second notification");
    mesh.shutdown().await;
}

async fn pruned_chat_events_lose_nothing_a_client_can_ask_for(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let r = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = r.body["conversation"]["id"].as_str().expect("a conversation").to_owned();
    let api = mesh.api.clone();
    let send = async |from: &str, n: usize| {
        let body = json!({"client_id": format!("c-{n}"), "content": format!("m{n}")});
        let r = api.post(&format!("/api/conversations/{id}/messages"), Some(from), body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["message"]["seq"].as_i64().expect("a seq")
    };
    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(send(&alice, n).await);
    }
    let seen = seqs[1];

    // Everything so far is older than the retention; the restarted worker prunes at once, but
    // only what its relay has published (all of it, once it has stopped).
    let events = "SELECT CAST(seq AS CHAR) FROM events";
    let logged = mesh.strings(Role::Chat, events).await.len();
    let mut db = mesh.database(Role::Chat).await;
    sqlx::query("UPDATE events SET at_ms = 0").execute(&mut db).await.expect("events aged");
    mesh.stop_role(Role::Chat).await;
    mesh.start_role(Role::Chat).await;
    eventually("the aged events pruned", async || mesh.strings(Role::Chat, events).await.is_empty()).await;
    assert!(mesh.metric("soulchat_chat_events_pruned_total").await >= logged as f64);

    // Newer events stay.
    for n in 5..7 {
        seqs.push(send(&bob, n).await);
    }
    assert_eq!(mesh.strings(Role::Chat, events).await.len(), 2, "the recent events are kept");

    // Bob saw up to `seen`: resume says the rest before the kept events is history's, then
    // replays the kept ones.
    let mut ws = Socket::connect(&mesh.api.base, &bob).await;
    ws.send(json!({"type": "resume", "conversations": {id.clone(): seen}})).await;
    let truncated = ws.next_of("resume_truncated").await;
    assert_eq!(
        (truncated["conversation_id"].as_str(), truncated["from_seq"].as_i64()),
        (Some(id.as_str()), Some(seqs[5]))
    );
    let mut replayed = Vec::new();
    loop {
        let frame = ws.next().await;
        match frame["type"].as_str().expect("a type") {
            "resumed" => break,
            "message" => replayed.push(frame["message"]["seq"].as_i64().expect("a seq")),
            _ => {}
        }
    }
    assert_eq!(replayed, seqs[5..], "the kept events, in order");
    // Live events follow without a gap.
    let later = send(&alice, 7).await;
    assert_eq!(ws.next_of("message").await["message"]["seq"], later);
    ws.close().await;

    // History still has every message.
    let r = mesh.api.get_as(&format!("/api/conversations/{id}/messages?limit=50"), &bob).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let history: Vec<i64> =
        r.body["messages"].as_array().expect("messages").iter().map(|m| m["seq"].as_i64().expect("a seq")).collect();
    seqs.push(later);
    assert_eq!(history, seqs, "every message, pruned events or not");

    // A client up to date is told nothing.
    let mut ws = Socket::connect(&mesh.api.base, &alice).await;
    ws.send(json!({"type": "resume", "conversations": {id.clone(): later}})).await;
    let frame = ws.next_of("resumed").await;
    assert_eq!(frame["type"], "resumed");
    ws.close().await;
    mesh.shutdown().await;
}
