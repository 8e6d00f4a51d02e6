//! Mentions end to end: `@username`s resolved by the gateway into the message's `mentions`, and
//! a `mention` notification for each mentioned member, online or not, even in a muted
//! conversation.

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Socket, each_backend};

use crate::{PASSWORD, notifications_of, token};

each_backend!(mentions_resolve_and_notify_even_when_muted);

async fn mentions_resolve_and_notify_even_when_muted(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let dave = token(&mesh.api.register("dave", PASSWORD).await);
    let group =
        mesh.api.post("/api/conversations", Some(&alice), json!({"name": "Crew", "members": ["bob", "carol"]})).await;
    let id = group.body["conversation"]["id"].as_str().unwrap().to_owned();

    // Bob mutes the group, and is online.
    let mut prefs = mesh.api.get_as("/api/notifications/preferences", &bob).await.body["preferences"].clone();
    prefs["muted_conversations"] = json!([id]);
    let muted = mesh.api.put("/api/notifications/preferences", &bob, json!({"preferences": prefs})).await;
    assert_eq!(muted.status, 200, "{:?}", muted.body);
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;

    let content = "@Bob and @dave, see a@carol.example; @nobody either";
    let path = format!("/api/conversations/{id}/messages");
    let sent = mesh.api.post(&path, Some(&alice), json!({"client_id": "m-1", "content": content})).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert_eq!(sent.body["message"]["mentions"], json!(["bob", "dave"]), "names with accounts, in order");
    // The message and the notification frames, in either order.
    let (mut frame, mut live) = (Value::Null, Value::Null);
    while frame.is_null() || live.is_null() {
        let next = bob_ws.next().await;
        match next["type"].as_str() {
            Some("message") => frame = next,
            Some("notification") => live = next,
            _ => {}
        }
    }
    assert_eq!(frame["message"]["mentions"], json!(["bob", "dave"]));
    let history = mesh.api.get_as(&path, &carol).await;
    assert_eq!(history.body["messages"][0]["mentions"], json!(["bob", "dave"]));

    // Bob is told although the group is muted and he is online, live and in the list.
    assert_eq!(
        (&live["notification"]["kind"], &live["notification"]["title"]),
        (&json!("mention"), &json!("alice mentioned you"))
    );
    let bobs = notifications_of(&mesh, &bob, "mention", 1).await;
    assert_eq!(bobs[0]["data"]["conversation_id"], id.as_str());

    // An edit resolves the new content's mentions, but notifies nobody: carol hears of her
    // next mention only.
    let seq = sent.body["message"]["seq"].as_i64().unwrap();
    let edited = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("{path}/{seq}"),
            Some(&alice),
            Some(json!({"content": "over to @carol"})),
        )
        .await;
    assert_eq!(edited.body["message"]["mentions"], json!(["carol"]), "{:?}", edited.body);
    assert_eq!(bob_ws.next_of("message_updated").await["message"]["mentions"], json!(["carol"]));
    let again = mesh.api.post(&path, Some(&bob), json!({"client_id": "m-2", "content": "@carol?"})).await;
    assert_eq!(again.body["message"]["mentions"], json!(["carol"]));
    assert_eq!(notifications_of(&mesh, &carol, "mention", 1).await[0]["title"], "bob mentioned you");

    // Dave is no member: named, but not told. By the time carol's came, alice's was handled.
    let daves = mesh.api.get_as("/api/notifications", &dave).await;
    assert!(daves.body["notifications"].as_array().unwrap().iter().all(|n| n["kind"] != "mention"), "{:?}", daves.body);
    let carols = notifications_of(&mesh, &carol, "mention", 1).await;
    assert_eq!(carols.len(), 1, "the edit notified nobody: {carols:?}");
    bob_ws.close().await;
    mesh.shutdown().await;
}
