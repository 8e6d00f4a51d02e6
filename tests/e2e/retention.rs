//! The ids of processed events are forgotten past the horizon, and only then: the notification
//! worker's pruner deletes old ids in batches, keeps recent ones, and a recent event delivered
//! again still changes nothing.

use std::time::Duration;

use serde_json::json;
use soulchat_runtime::processed::Horizon;
use soulchat_subjects::notification;
use soulchat_subjects::streams::EVENTS_STREAM;
use soulchat_subjects::time::now_ms;
use soulchat_testkit::{Backend, Mesh, Role, each_backend};

use crate::{PASSWORD, token};

each_backend!(old_processed_event_ids_are_pruned_and_recent_ones_still_deduplicate);

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
