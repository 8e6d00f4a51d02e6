//! Chat end to end: conversations over REST, messages over REST and WebSocket, live fan-out,
//! resume, and the socket's rules (tickets, origins, bad frames, token expiry).

use std::time::Duration;

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Closed, Mesh, Options, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(direct_chat_over_rest_and_socket, group_roles_and_permissions, resume_replays_what_was_missed);

async fn open_direct(mesh: &Mesh, token: &str, with: &str) -> (u16, Value) {
    let r = mesh.api.post("/api/conversations/direct", Some(token), json!({"username": with})).await;
    (r.status, r.body["conversation"].clone())
}

async fn direct_chat_over_rest_and_socket(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    bob_ws.send(json!({"type": "ping"})).await;
    assert_eq!(bob_ws.next_of("pong").await["type"], "pong");

    let (status, conversation) = open_direct(&mesh, &alice, "bob").await;
    assert_eq!(status, 201, "{conversation}");
    let id = conversation["id"].as_str().unwrap().to_owned();
    let (again, same) = open_direct(&mesh, &bob, "ALICE").await;
    assert_eq!((again, same["id"].as_str()), (200, Some(id.as_str())), "exactly one direct conversation per pair");

    // Over the socket: the sender gets its ack, the other side the message.
    bob_ws
        .send(json!({"type": "send", "conversation_id": id, "client_id": "b-1", "content": "hi alice", "kind": "text"}))
        .await;
    let ack = bob_ws.next_of("ack").await;
    assert_eq!(ack["client_id"], "b-1");
    assert_eq!(ack["message"]["sender"], "bob");
    let seq = ack["message"]["seq"].as_i64().unwrap();
    let message = alice_ws.next_of("message").await;
    assert_eq!((message["message"]["content"].as_str(), message["seq"].as_i64()), (Some("hi alice"), Some(seq)));

    // Over REST: 201, a retry with the same client_id is 200 with the same message.
    let body = json!({"client_id": "a-1", "content": "hello bob", "kind": "text"});
    let sent = mesh.api.post(&format!("/api/conversations/{id}/messages"), Some(&alice), body.clone()).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    let retry = mesh.api.post(&format!("/api/conversations/{id}/messages"), Some(&alice), body).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body["message"]["seq"], sent.body["message"]["seq"]);
    let live = bob_ws.next_of("message").await;
    assert_eq!(live["message"]["content"], "hello bob");
    assert_eq!(
        alice_ws.next_of("message").await["message"]["client_id"],
        "a-1",
        "a REST send reaches the sender's sockets too"
    );
    assert_eq!(bob_ws.next_within(Duration::from_millis(300)).await, None, "the retry was not delivered again");

    // Edit and delete fan out; history shows the result.
    let a_seq = sent.body["message"]["seq"].as_i64().unwrap();
    let edited = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/conversations/{id}/messages/{a_seq}"),
            Some(&alice),
            Some(json!({"content": "hello, bob"})),
        )
        .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert_eq!(bob_ws.next_of("message_updated").await["message"]["content"], "hello, bob");
    let not_mine = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/conversations/{id}/messages/{a_seq}"),
            Some(&bob),
            Some(json!({"content": "x"})),
        )
        .await;
    assert_eq!(not_mine.status, 403);
    let deleted = mesh.api.delete_as(&format!("/api/conversations/{id}/messages/{seq}"), &bob).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(alice_ws.next_of("message_deleted").await["message_seq"], seq);

    let history = mesh.api.get_as(&format!("/api/conversations/{id}/messages"), &alice).await;
    assert_eq!(history.status, 200, "{:?}", history.body);
    let messages = history.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[0]["deleted"].as_bool(), messages[0]["content"].as_str()), (Some(true), Some("")));
    assert_eq!(messages[1]["content"], "hello, bob");
    assert!(history.body["next_cursor"].is_null());

    // Read receipts reach both sides; unread counts follow.
    let list = mesh.api.get_as("/api/conversations", &bob).await;
    assert_eq!(list.body["conversations"][0]["unread_count"], 1, "{:?}", list.body);
    let read = mesh.api.post(&format!("/api/conversations/{id}/read"), Some(&bob), json!({"seq": a_seq})).await;
    assert_eq!(read.status, 204, "{:?}", read.body);
    let receipt = alice_ws.next_of("read").await;
    assert_eq!((receipt["user"].as_str(), receipt["seq"].as_i64()), (Some("bob"), Some(a_seq)));
    assert_eq!(mesh.api.get_as("/api/conversations", &bob).await.body["conversations"][0]["unread_count"], 0);

    // A stranger learns nothing.
    let eve = token(&mesh.api.register("eve", PASSWORD).await);
    let peek = mesh.api.get_as(&format!("/api/conversations/{id}/messages"), &eve).await;
    assert_eq!((peek.status, peek.error("conversation")), (404, Some("not found")));
    let post = mesh
        .api
        .post(&format!("/api/conversations/{id}/messages"), Some(&eve), json!({"client_id": "e", "content": "hi"}))
        .await;
    assert_eq!(post.status, 404);

    // A client id belongs to its sender across conversations: reused in another, it is refused.
    let group = mesh.api.post("/api/conversations", Some(&alice), json!({"name": "g", "members": ["bob"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let body = json!({"client_id": "a-1", "content": "elsewhere"});
    let reused = mesh.api.post(&format!("/api/conversations/{group}/messages"), Some(&alice), body).await;
    assert_eq!(reused.status, 409, "{:?}", reused.body);
    assert!(reused.error("client_id").is_some(), "{:?}", reused.body);
    let history = mesh.api.get_as(&format!("/api/conversations/{group}/messages"), &alice).await;
    assert_eq!(history.body["messages"].as_array().map(Vec::len), Some(0), "nothing stored: {:?}", history.body);
    alice_ws.close().await;
    bob_ws.close().await;
    mesh.shutdown().await;
}

async fn group_roles_and_permissions(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let owner = token(&mesh.api.register("olga", PASSWORD).await);
    let member = token(&mesh.api.register("mark", PASSWORD).await);
    let other = token(&mesh.api.register("nina", PASSWORD).await);
    let created = mesh
        .api
        .post("/api/conversations", Some(&owner), json!({"name": "Team", "description": "d", "members": ["mark"]}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["conversation"]["member_count"], 2);

    let rename = mesh
        .api
        .send(reqwest::Method::PATCH, &format!("/api/conversations/{id}"), Some(&member), Some(json!({"name": "Mine"})))
        .await;
    assert_eq!(rename.status, 403, "a plain member cannot rename");
    let add =
        mesh.api.post(&format!("/api/conversations/{id}/members"), Some(&member), json!({"username": "nina"})).await;
    assert_eq!(add.status, 403);
    let add =
        mesh.api.post(&format!("/api/conversations/{id}/members"), Some(&owner), json!({"username": "nina"})).await;
    assert_eq!(add.status, 201, "{:?}", add.body);
    assert_eq!(add.body["member"]["username"], "nina");
    let promote = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/conversations/{id}/members/mark"),
            Some(&owner),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promote.status, 200, "{:?}", promote.body);
    let renamed = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/conversations/{id}"),
            Some(&member),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "an admin may rename: {:?}", renamed.body);
    assert_eq!(renamed.body["conversation"]["name"], "Renamed");

    let leave = mesh.api.delete_as(&format!("/api/conversations/{id}/members/olga"), &owner).await;
    assert_eq!(leave.status, 403, "the owner hands ownership on before leaving: {:?}", leave.body);
    let transfer = mesh
        .api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/conversations/{id}/members/mark"),
            Some(&owner),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(transfer.status, 200, "{:?}", transfer.body);
    assert_eq!(mesh.api.delete_as(&format!("/api/conversations/{id}/members/olga"), &owner).await.status, 204);
    assert_eq!(
        mesh.api.get_as(&format!("/api/conversations/{id}"), &owner).await.status,
        404,
        "a former member learns nothing"
    );
    let nina_leaves = mesh.api.delete_as(&format!("/api/conversations/{id}/members/nina"), &other).await;
    assert_eq!(nina_leaves.status, 204);
    let deleted = mesh.api.delete_as(&format!("/api/conversations/{id}"), &member).await;
    assert_eq!(deleted.status, 204, "the new owner deletes: {:?}", deleted.body);
    mesh.shutdown().await;
}

async fn resume_replays_what_was_missed(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let (_, direct) = open_direct(&mesh, &alice, "bob").await;
    let direct_id = direct["id"].as_str().unwrap().to_owned();
    let send = |id: String, t: String, n: usize| {
        let api = mesh.api.clone();
        async move {
            let body = json!({"client_id": format!("c{n}-{id}"), "content": format!("m{n}")});
            let r = api.post(&format!("/api/conversations/{id}/messages"), Some(&t), body).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            r.body["message"]["seq"].as_i64().unwrap()
        }
    };
    let seen = send(direct_id.clone(), alice.clone(), 0).await;

    // Bob is offline while alice sends more and adds him to a new group.
    for n in 1..=3 {
        send(direct_id.clone(), alice.clone(), n).await;
    }
    let group = mesh.api.post("/api/conversations", Some(&alice), json!({"name": "G", "members": ["bob"]})).await;
    let group_id = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    send(group_id.clone(), alice.clone(), 9).await;

    let mut ws = Socket::connect(&mesh.api.base, &bob).await;
    ws.send(json!({"type": "resume", "conversations": {direct_id.clone(): seen}})).await;
    let (mut direct_seqs, mut group_frames) = (Vec::new(), Vec::new());
    loop {
        let frame = ws.next().await;
        match frame["type"].as_str().unwrap() {
            "resumed" => break,
            "notification" | "presence" => {} // live, not part of any conversation's order
            _ if frame["conversation_id"] == direct_id.as_str() => direct_seqs.push(frame["seq"].as_i64().unwrap()),
            _ if frame["conversation_id"] == group_id.as_str() => {
                group_frames.push(frame["type"].as_str().unwrap().to_owned())
            }
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    assert_eq!(direct_seqs, ((seen + 1)..=(seen + 3)).collect::<Vec<_>>(), "missed messages, in order, no gaps");
    assert!(group_frames.contains(&"message".to_owned()), "the group joined meanwhile is replayed: {group_frames:?}");
    // From `resumed` on, nothing is missed.
    let later = send(direct_id.clone(), alice.clone(), 4).await;
    assert_eq!(ws.next_of("message").await["seq"], later);
    ws.close().await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_rules() {
    let mut options = Options::new(Backend::Sqlite);
    options.access_ttl = Duration::from_secs(3);
    let mesh = Mesh::start_with(options).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let base = mesh.api.base.clone();

    assert_eq!(Socket::try_connect(&base, None, None, None).await.err(), Some(401), "no credentials");
    assert_eq!(Socket::try_connect(&base, Some(&alice), None, Some("https://evil.example")).await.err(), Some(403));
    assert!(Socket::try_connect(&base, Some(&alice), None, Some("https://app.example")).await.is_ok());

    // A ticket works once.
    let ticket = mesh.api.post("/api/ws/ticket", Some(&alice), json!({})).await;
    assert_eq!(ticket.status, 201, "{:?}", ticket.body);
    let ticket = ticket.body["ticket"].as_str().unwrap().to_owned();
    let mut ws =
        Socket::try_connect(&base, None, Some(&ticket), Some("https://app.example")).await.expect("the ticket admits");
    assert_eq!(Socket::try_connect(&base, None, Some(&ticket), None).await.err(), Some(401), "a ticket is single-use");

    // Bad frames get an error frame and the socket stays open.
    ws.send_raw("{not json".into()).await;
    assert_eq!(ws.next_of("error").await["code"], 400);
    ws.send(json!({"type": "send", "conversation_id": "nope", "client_id": "x1", "content": "hi"})).await;
    let error = ws.next_of("error").await;
    assert_eq!((error["code"].as_u64(), error["client_id"].as_str()), (Some(404), Some("x1")));
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next_of("pong").await["type"], "pong");

    // The token expires: 4401.
    let (_, closed) = ws.closed_within(Duration::from_secs(10)).await;
    assert!(matches!(closed, Closed::Code(4401, _)), "{closed:?}");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_typing_reach_the_members() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    token(&mesh.api.register("stranger", PASSWORD).await);
    let (_, direct) = open_direct(&mesh, &alice, "bob").await;
    let id = direct["id"].as_str().unwrap().to_owned();

    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    // A socket answers frames only after sending its presence snapshot: once Bob has his pong,
    // Alice's arrival reaches him as one announcement, not also as part of his snapshot.
    bob_ws.send(json!({"type": "ping"})).await;
    bob_ws.next_of("pong").await;
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let online = bob_ws.next_of("presence").await;
    assert_eq!((online["user"].as_str(), online["status"].as_str()), (Some("alice"), Some("online")));
    let snapshot = alice_ws.next_of("presence").await;
    assert_eq!(
        (snapshot["user"].as_str(), snapshot["status"].as_str()),
        (Some("bob"), Some("online")),
        "a new socket learns its contacts' presence"
    );

    alice_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    let typing = bob_ws.next_of("typing").await;
    assert_eq!((typing["user"].as_str(), typing["conversation_id"].as_str()), (Some("alice"), Some(id.as_str())));

    alice_ws.close().await;
    let offline = bob_ws.next_of("presence").await;
    assert_eq!((offline["user"].as_str(), offline["status"].as_str()), (Some("alice"), Some("offline")));
    assert!(offline["last_seen"].is_string());
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_and_file_messages_carry_a_url_and_metadata() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    token(&mesh.api.register("bob", PASSWORD).await);
    let (_, direct) = open_direct(&mesh, &alice, "bob").await;
    let path = format!("/api/conversations/{}/messages", direct["id"].as_str().unwrap());

    let image = json!({"client_id": "img", "kind": "image", "content": "our cat", "url": "https://cdn.example/cat.png",
                       "metadata": {"name": "cat.png", "size": "48213", "type": "image/png", "width": "640"}});
    let sent = mesh.api.post(&path, Some(&alice), image).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert_eq!(sent.body["message"]["url"], "https://cdn.example/cat.png");
    assert_eq!(sent.body["message"]["metadata"]["type"], "image/png");
    let history = mesh.api.get_as(&path, &alice).await;
    assert_eq!(history.body["messages"][0]["metadata"]["name"], "cat.png");

    for (body, field) in [
        (json!({"client_id": "f1", "kind": "file", "url": "http://insecure.example/a.pdf"}), "url"),
        (json!({"client_id": "f2", "kind": "file"}), "url"),
        (json!({"client_id": "f3", "kind": "text", "content": "hi", "metadata": {"a": "b"}}), "metadata"),
        (json!({"client_id": "f4", "kind": "video", "url": "https://x.example/v"}), "kind"),
    ] {
        let refused = mesh.api.post(&path, Some(&alice), body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {:?}", refused.body);
        assert!(refused.error(field).is_some(), "{body}: {:?}", refused.body);
    }
    mesh.shutdown().await;
}
