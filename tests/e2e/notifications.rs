//! Notifications through the gateway: the in-app list with its unread filter and count, live
//! `notification` frames, marking read, privacy between users, and system alerts.

use std::time::Duration;

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Role, Socket, each_backend, user_id};

use crate::{PASSWORD, token};

each_backend!(in_app_notifications_list_live_and_read, admins_broadcast_system_alerts);

/// Waits until the user's list holds `count` notifications.
async fn list_until(mesh: &Mesh, token: &str, query: &str, count: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = mesh.api.get_as(&format!("/api/notifications{query}"), token).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        if r.body["notifications"].as_array().is_some_and(|n| n.len() >= count) {
            return r.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "fewer than {count} notifications: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn in_app_notifications_list_live_and_read(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let welcome = list_until(&mesh, &bob, "", 1).await;
    assert_eq!(welcome["notifications"][0]["kind"], "welcome");

    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    assert_eq!(mesh.api.post("/api/profiles/bob/follow", Some(&alice), json!({})).await.status, 200);
    let live = bob_ws.next_of("notification").await;
    assert_eq!(live["notification"]["kind"], "follower");
    assert_eq!(live["notification"]["data"]["username"], "alice");

    let list = list_until(&mesh, &bob, "", 2).await;
    assert_eq!(list["unread_count"], 2);
    assert_eq!(list["notifications"][0]["kind"], "follower", "newest first");
    let follower_id = list["notifications"][0]["id"].as_str().unwrap().to_owned();

    // Alice sees only her own, and cannot mark Bob's.
    let hers = mesh.api.get_as("/api/notifications", &alice).await;
    assert!(hers.body["notifications"].as_array().unwrap().iter().all(|n| n["kind"] == "welcome"), "{:?}", hers.body);
    assert_eq!(mesh.api.post("/api/notifications/read", Some(&alice), json!({"ids": [follower_id]})).await.status, 204);
    assert_eq!(mesh.api.get_as("/api/notifications", &bob).await.body["unread_count"], 2);

    assert_eq!(mesh.api.post("/api/notifications/read", Some(&bob), json!({"ids": [follower_id]})).await.status, 204);
    let unread = mesh.api.get_as("/api/notifications?unread=true", &bob).await;
    assert_eq!(unread.body["unread_count"], 1);
    assert_eq!(unread.body["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(unread.body["notifications"][0]["kind"], "welcome");
    assert_eq!(mesh.api.post("/api/notifications/read", Some(&bob), json!({"all": true})).await.status, 204);
    assert_eq!(mesh.api.get_as("/api/notifications", &bob).await.body["unread_count"], 0);
    let empty = mesh.api.post("/api/notifications/read", Some(&bob), json!({})).await;
    assert_eq!(empty.status, 422);

    // Preferences round-trip.
    let prefs = mesh.api.get_as("/api/notifications/preferences", &bob).await;
    assert_eq!(prefs.body["preferences"]["in_app"], true);
    let put = mesh
        .api
        .put("/api/notifications/preferences", &bob, json!({"preferences": {"in_app": true, "push": false, "email": false, "sms": false, "muted_conversations": []}}))
        .await;
    assert_eq!((put.status, put.body["preferences"]["push"].as_bool()), (200, Some(false)), "{:?}", put.body);
    mesh.shutdown().await;
}

async fn admins_broadcast_system_alerts(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let admin = token(&mesh.api.register("admin", PASSWORD).await);
    let user = token(&mesh.api.register("user", PASSWORD).await);
    mesh.options.admin_user_ids = vec![user_id(&admin)];
    mesh.stop_role(Role::Gateway).await;
    mesh.start_role(Role::Gateway).await;

    let mut watching = Socket::connect(&mesh.api.base, &user).await;
    let refused = mesh.api.post("/api/admin/alerts", Some(&user), json!({"title": "Hi", "body": "no"})).await;
    assert_eq!(refused.status, 403);
    let sent =
        mesh.api.post("/api/admin/alerts", Some(&admin), json!({"title": "Maintenance", "body": "at noon"})).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    let live = watching.next_of("notification").await;
    assert_eq!(
        (live["notification"]["kind"].as_str(), live["notification"]["title"].as_str()),
        (Some("alert"), Some("Maintenance"))
    );
    for t in [&admin, &user] {
        let list = list_until(&mesh, t, "", 2).await;
        assert!(list["notifications"].as_array().unwrap().iter().any(|n| n["kind"] == "alert"), "{list}");
    }
    mesh.shutdown().await;
}
