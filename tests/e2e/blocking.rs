//! Blocking end to end: the REST shapes, a blocked user kept out of the blocker's direct
//! conversation (REST and WebSocket), presence and typing withheld, no notifications of a
//! blocked sender's messages, and the profile worker's operations over NATS.

use std::time::Duration;

use serde_json::{Value, json};
use soulchat_subjects::broker::Identity;
use soulchat_subjects::profile::{self, messages as pm};
use soulchat_subjects::{CallContext, CallError, Caller};
use soulchat_testkit::{Backend, Mesh, Socket, each_backend, user_id};

use crate::{PASSWORD, notifications_until, token};

each_backend!(
    blocking_over_rest_and_socket,
    blocked_users_see_no_presence_or_typing,
    a_blocked_senders_messages_notify_nobody,
    blocks_over_nats
);

/// Opens (or finds) the direct conversation until it is refused (`refused`) or not: the chat
/// worker learns of a block from the profile worker's event, a few milliseconds after the
/// block's answer.
async fn open_direct_until(mesh: &Mesh, token: &str, with: &str, refused: bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = mesh.api.post("/api/conversations/direct", Some(token), json!({"username": with})).await;
        if (r.status == 403) == refused && (refused || r.status < 300) {
            return r.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "open_direct still answers {}: {:?}", r.status, r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(
    mesh: &Mesh,
    token: &str,
    conversation: &str,
    client_id: &str,
    content: &str,
) -> soulchat_testkit::Response {
    let body = json!({"client_id": client_id, "content": content});
    mesh.api.post(&format!("/api/conversations/{conversation}/messages"), Some(token), body).await
}

async fn blocking_over_rest_and_socket(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let direct = open_direct_until(&mesh, &bob, "alice", false).await;
    let id = direct["conversation"]["id"].as_str().unwrap().to_owned();
    let group = mesh.api.post("/api/conversations", Some(&alice), json!({"name": "g", "members": ["bob"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();

    // The shapes: 200 {profile} with `blocked`, idempotent both ways, the caller's view.
    let blocked = mesh.api.post("/api/profiles/BOB/block", Some(&alice), json!({})).await;
    assert_eq!(blocked.status, 200, "{:?}", blocked.body);
    assert_eq!(
        (blocked.body["profile"]["username"].as_str(), blocked.body["profile"]["blocked"].as_bool()),
        (Some("bob"), Some(true))
    );
    let again = mesh.api.post("/api/profiles/bob/block", Some(&alice), json!({})).await;
    assert_eq!((again.status, again.body["profile"]["blocked"].as_bool()), (200, Some(true)));
    assert_eq!(mesh.api.get_as("/api/profiles/bob", &alice).await.body["profile"]["blocked"], true);
    assert_eq!(
        mesh.api.get_as("/api/profiles/bob", &carol).await.body["profile"]["blocked"],
        false,
        "the caller's view"
    );
    assert_eq!(mesh.api.get_as("/api/profiles/alice", &bob).await.body["profile"]["blocked"], false);
    assert_eq!(mesh.api.get("/api/profiles/bob").await.body["profile"]["blocked"], false, "anonymous");
    let search = mesh.api.get_as("/api/profiles?q=b", &alice).await;
    assert_eq!(search.body["profiles"][0]["blocked"], true, "{:?}", search.body);
    let list = mesh.api.get_as("/api/user/blocks", &alice).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let names: Vec<&str> =
        list.body["profiles"].as_array().unwrap().iter().filter_map(|p| p["username"].as_str()).collect();
    assert_eq!(names, ["bob"]);
    assert!(list.body["next_cursor"].is_null());
    assert!(mesh.api.get_as("/api/user/blocks", &bob).await.body["profiles"].as_array().unwrap().is_empty());

    // Bad input names the field.
    let me = mesh.api.post("/api/profiles/alice/block", Some(&alice), json!({})).await;
    assert_eq!((me.status, me.error("profile")), (422, Some("cannot block yourself")));
    let nobody = mesh.api.post("/api/profiles/nobody/block", Some(&alice), json!({})).await;
    assert_eq!((nobody.status, nobody.error("profile")), (404, Some("not found")));
    let anonymous = mesh.api.post("/api/profiles/bob/block", None, json!({})).await;
    assert_eq!((anonymous.status, anonymous.error("token")), (401, Some("is missing")));
    let limit = mesh.api.get_as("/api/user/blocks?limit=0", &alice).await;
    assert_eq!(limit.status, 422, "{:?}", limit.body);
    let cursor = mesh.api.get_as("/api/user/blocks?cursor=x", &alice).await;
    assert_eq!((cursor.status, cursor.error("cursor")), (422, Some("is invalid")));

    // Bob can neither open nor send into the direct conversation; Alice still can; groups go on.
    let refused = open_direct_until(&mesh, &bob, "alice", true).await;
    assert_eq!(refused["errors"]["conversation"][0], "is blocked", "{refused}");
    let sent = send(&mesh, &bob, &id, "b-1", "hello?").await;
    assert_eq!((sent.status, sent.error("conversation")), (403, Some("is blocked")), "{:?}", sent.body);
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    bob_ws
        .send(json!({"type": "send", "conversation_id": id, "client_id": "b-2", "content": "hi", "kind": "text"}))
        .await;
    let error = bob_ws.next_of("error").await;
    assert_eq!((error["code"].as_i64(), error["client_id"].as_str()), (Some(403), Some("b-2")), "{error}");
    assert_eq!(error["errors"]["conversation"][0], "is blocked", "{error}");
    assert_eq!(send(&mesh, &alice, &id, "a-1", "you are blocked").await.status, 201);
    assert_eq!(open_direct_until(&mesh, &alice, "bob", false).await["conversation"]["id"], id.as_str());
    assert_eq!(send(&mesh, &bob, &group, "b-3", "in the group").await.status, 201);
    let history = mesh.api.get_as(&format!("/api/conversations/{id}/messages"), &alice).await;
    let contents: Vec<&str> =
        history.body["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["you are blocked"], "nothing of Bob's got in");

    // Unblocked, Bob talks again.
    let unblocked = mesh.api.delete_as("/api/profiles/bob/block", &alice).await;
    assert_eq!((unblocked.status, unblocked.body["profile"]["blocked"].as_bool()), (200, Some(false)));
    assert_eq!(mesh.api.delete_as("/api/profiles/bob/block", &alice).await.status, 200, "idempotent");
    assert!(mesh.api.get_as("/api/user/blocks", &alice).await.body["profiles"].as_array().unwrap().is_empty());
    open_direct_until(&mesh, &bob, "alice", false).await;
    assert_eq!(send(&mesh, &bob, &id, "b-4", "friends again").await.status, 201);
    mesh.shutdown().await;
}

/// The next `presence` frame about `user`.
async fn presence_of(socket: &mut Socket, user: &str) -> Value {
    loop {
        let presence = socket.next_of("presence").await;
        if presence["user"] == user {
            return presence;
        }
    }
}

/// Reads Bob's frames until the group message `content` arrives, returning what came before.
async fn frames_until_message(socket: &mut Socket, content: &str) -> Vec<Value> {
    let mut before = Vec::new();
    loop {
        let frame = socket.next().await;
        if frame["type"] == "message" && frame["message"]["content"] == content {
            return before;
        }
        before.push(frame);
    }
}

async fn blocked_users_see_no_presence_or_typing(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let group =
        mesh.api.post("/api/conversations", Some(&alice), json!({"name": "g", "members": ["bob", "carol"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(mesh.api.post("/api/profiles/bob/block", Some(&alice), json!({})).await.status, 200);
    open_direct_until(&mesh, &bob, "alice", true).await; // the chat worker knows of the block

    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    let mut carol_ws = Socket::connect(&mesh.api.base, &carol).await;
    for ws in [&mut bob_ws, &mut carol_ws] {
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    assert_eq!(presence_of(&mut carol_ws, "alice").await["status"], "online");
    alice_ws.send(json!({"type": "typing", "conversation_id": group})).await;
    let typing = carol_ws.next_of("typing").await;
    assert_eq!(typing["user"], "alice");
    // Alice's snapshot: Carol's presence, not Bob's.
    alice_ws.send(json!({"type": "ping"})).await;
    let mut snapshot = Vec::new();
    loop {
        let frame = alice_ws.next().await;
        if frame["type"] == "pong" {
            break;
        }
        if frame["type"] == "presence" {
            snapshot.push(frame["user"].as_str().unwrap_or_default().to_owned());
        }
    }
    // Carol's own arrival may reach Alice too, besides the snapshot.
    snapshot.dedup();
    assert_eq!(snapshot, ["carol"], "a blocked user's presence is not shown to the blocker either");

    // Bob was told neither that Alice came online nor that she typed: Carol was, before Alice's
    // message, which Bob gets after anything sent to him earlier.
    assert_eq!(send(&mesh, &alice, &group, "a-1", "marker").await.status, 201);
    let before = frames_until_message(&mut bob_ws, "marker").await;
    let leaked: Vec<&Value> =
        before.iter().filter(|f| (f["type"] == "presence" || f["type"] == "typing") && f["user"] == "alice").collect();
    assert!(leaked.is_empty(), "Bob saw {leaked:?}");
    // And Bob's typing does not reach Alice.
    bob_ws.send(json!({"type": "typing", "conversation_id": group})).await;
    assert_eq!(carol_ws.next_of("typing").await["user"], "bob");
    assert_eq!(send(&mesh, &bob, &group, "b-1", "marker 2").await.status, 201);
    let before = frames_until_message(&mut alice_ws, "marker 2").await;
    assert!(before.iter().all(|f| f["type"] != "typing" && f["user"] != "bob"), "Alice saw {before:?}");

    // Unblocked, presence flows again.
    assert_eq!(mesh.api.delete_as("/api/profiles/bob/block", &alice).await.status, 200);
    open_direct_until(&mesh, &bob, "alice", false).await;
    alice_ws.close().await;
    assert_eq!(presence_of(&mut bob_ws, "alice").await["status"], "offline");
    mesh.shutdown().await;
}

/// Waits until the user's notifications include one whose title is `title`.
async fn notifications_titled(mesh: &Mesh, token: &str, title: &str) -> Vec<Value> {
    notifications_until(mesh, token, |list| list.iter().any(|n| n["title"] == title)).await
}

async fn a_blocked_senders_messages_notify_nobody(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let group =
        mesh.api.post("/api/conversations", Some(&alice), json!({"name": "g", "members": ["bob", "carol"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let direct = open_direct_until(&mesh, &bob, "alice", false).await;
    let direct = direct["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&mesh, &bob, &direct, "b-0", "before the block").await.status, 201);
    notifications_titled(&mesh, &alice, "New message from bob").await;

    assert_eq!(mesh.api.post("/api/profiles/bob/block", Some(&alice), json!({})).await.status, 200);
    // Alice has no socket: a mention would notify her. Bob's does not; Carol's, later, does.
    assert_eq!(send(&mesh, &bob, &group, "b-1", "@alice look").await.status, 201);
    assert_eq!(send(&mesh, &carol, &group, "c-1", "@alice look too").await.status, 201);
    let list = notifications_titled(&mesh, &alice, "carol mentioned you").await;
    let titles: Vec<&str> = list.iter().filter_map(|n| n["title"].as_str()).collect();
    assert!(!titles.contains(&"bob mentioned you"), "{titles:?}");
    // Bob is not blocked by Carol: his mention reaches her.
    assert_eq!(send(&mesh, &bob, &group, "b-2", "@carol hi").await.status, 201);
    notifications_titled(&mesh, &carol, "bob mentioned you").await;
    mesh.shutdown().await;
}

async fn blocks_over_nats(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let (alice_id, bob_id, carol_id) = (user_id(&alice), user_id(&bob), user_id(&carol));
    let gateway = Caller::new(mesh.client_as(Identity::Gateway).await, Duration::from_secs(5));
    let as_alice = CallContext::internal().with_user(alice_id.clone());

    let reply = gateway.call::<profile::Block>(&as_alice, &pm::BlockRequest { username: "bob".into() }).await.unwrap();
    let profile = reply.profile.unwrap();
    assert_eq!((profile.user_id.as_str(), profile.blocked), (bob_id.as_str(), true));
    let list = gateway.call::<profile::ListBlocks>(&as_alice, &pm::ListBlocksRequest::default()).await.unwrap();
    assert_eq!(list.profiles.iter().map(|p| p.username.as_str()).collect::<Vec<_>>(), ["bob"]);
    let anonymous =
        gateway.call::<profile::ListBlocks>(&CallContext::internal(), &pm::ListBlocksRequest::default()).await;
    assert!(matches!(anonymous, Err(CallError::Service(_))), "listing blocks needs a caller: {anonymous:?}");

    // Who blocks whom among a set, as the notification worker asks it (its permissions allow it).
    let notification = Caller::new(mesh.client_as(Identity::Notification).await, Duration::from_secs(5));
    let request = pm::BlockedAmongRequest { user_id: bob_id.clone(), among: vec![alice_id.clone(), carol_id.clone()] };
    let among = notification.call::<profile::BlockedAmong>(&CallContext::internal(), &request).await.unwrap();
    assert_eq!((among.blocked, among.blocked_by), (Vec::<String>::new(), vec![alice_id.clone()]));
    let request = pm::BlockedAmongRequest { user_id: alice_id.clone(), among: vec![bob_id.clone(), carol_id] };
    let among = gateway.call::<profile::BlockedAmong>(&CallContext::internal(), &request).await.unwrap();
    assert_eq!((among.blocked, among.blocked_by), (vec![bob_id.clone()], Vec::<String>::new()));
    let too_many = pm::BlockedAmongRequest { user_id: alice_id.clone(), among: vec![bob_id.clone(); 1001] };
    let refused = gateway.call::<profile::BlockedAmong>(&CallContext::internal(), &too_many).await;
    let Err(CallError::Service(refused)) = refused else { panic!("at most 1,000 ids: {refused:?}") };
    assert!(refused.fields.contains_key("among"), "{refused:?}");

    // Each change is one event through the outbox (a repeat changes nothing).
    gateway.call::<profile::Block>(&as_alice, &pm::BlockRequest { username: "bob".into() }).await.unwrap();
    gateway.call::<profile::Unblock>(&as_alice, &pm::BlockRequest { username: "bob".into() }).await.unwrap();
    let events = mesh.events("soulchat.events.profile.block_changed", 2).await;
    let seen: Vec<(String, String, bool)> = events
        .into_iter()
        .map(|(_, payload, id)| {
            assert!(id.starts_with("profile:"), "{id}");
            let e: pm::BlockEvent = prost::Message::decode(payload).unwrap();
            (e.blocker_id, e.blocked_id, e.blocked)
        })
        .collect();
    assert_eq!(seen, [(alice_id.clone(), bob_id.clone(), true), (alice_id, bob_id, false)]);
    mesh.shutdown().await;
}
