//! Threads end to end: replies sent with `thread_root` over REST and WebSocket stay out of the
//! main history, the root carries its thread's summary, the thread pages like history, and the
//! thread's participants are notified (unless they muted the conversation).

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Socket, each_backend};

use crate::{PASSWORD, notifications_of, token};

each_backend!(threads_over_rest_and_socket);

fn seqs(list: &Value) -> Vec<i64> {
    list["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

async fn threads_over_rest_and_socket(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let group =
        mesh.api.post("/api/conversations", Some(&alice), json!({"name": "Crew", "members": ["bob", "carol"]})).await;
    let id = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/conversations/{id}/messages");
    let root = mesh.api.post(&path, Some(&alice), json!({"client_id": "a-1", "content": "lunch?"})).await;
    let root = root.body["message"]["seq"].as_i64().unwrap();
    // Carol muted the group: she takes part, but is not notified.
    let mut prefs = mesh.api.get_as("/api/notifications/preferences", &carol).await.body["preferences"].clone();
    prefs["muted_conversations"] = json!([id]);
    assert_eq!(mesh.api.put("/api/notifications/preferences", &carol, json!({"preferences": prefs})).await.status, 200);

    // A reply over REST, one over the socket; the members' sockets see them as such.
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let reply = json!({"client_id": "c-1", "content": "yes", "thread_root": root});
    let sent = mesh.api.post(&path, Some(&carol), reply).await;
    assert_eq!((sent.status, &sent.body["message"]["thread_root"]), (201, &json!(root)), "{:?}", sent.body);
    let frame = alice_ws.next_of("message").await;
    assert_eq!(frame["message"]["thread_root"], root);
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    bob_ws
        .send(json!({"type": "send", "conversation_id": id, "client_id": "b-1", "content": "me too", "thread_root": root}))
        .await;
    let ack = bob_ws.next_of("ack").await;
    assert_eq!(ack["message"]["thread_root"], root, "{ack}");
    let last_reply = ack["message"]["seq"].as_i64().unwrap();
    let main_line = mesh.api.post(&path, Some(&bob), json!({"client_id": "b-2", "content": "meanwhile"})).await;
    let main_line = main_line.body["message"]["seq"].as_i64().unwrap();

    // The main history has the root (with its summary) and not the replies.
    let history = mesh.api.get_as(&path, &alice).await;
    assert_eq!(seqs(&history.body), [root, main_line], "{:?}", history.body);
    let thread = &history.body["messages"][0]["thread"];
    assert_eq!(thread["reply_count"], 2, "{thread}");
    assert_eq!(thread["last_reply_at"], ack["message"]["created_at"]);
    assert!(history.body["messages"][1]["thread"].is_null());

    // The thread pages like history.
    let replies = mesh.api.get_as(&format!("{path}/{root}/thread?limit=1"), &carol).await;
    assert_eq!((replies.status, seqs(&replies.body)), (200, vec![last_reply]), "{:?}", replies.body);
    let cursor = replies.body["next_cursor"].as_i64().unwrap();
    let older = mesh.api.get_as(&format!("{path}/{root}/thread?limit=1&before={cursor}"), &carol).await;
    assert_eq!(older.body["messages"][0]["content"], "yes");
    assert!(older.body["next_cursor"].is_null());

    // Participants are told of replies: alice (the root's) of both; carol muted the group.
    let alices = notifications_of(&mesh, &alice, "thread_reply", 2).await;
    assert_eq!(alices[0]["title"], "bob replied in a thread");
    let carols = mesh.api.get_as("/api/notifications", &carol).await;
    let carols = carols.body["notifications"].as_array().unwrap().clone();
    assert!(carols.iter().all(|n| n["kind"] != "thread_reply"), "{carols:?}");

    // Bad input names the field; strangers learn nothing.
    let nested = json!({"client_id": "a-2", "content": "x", "thread_root": last_reply});
    let refused = mesh.api.post(&path, Some(&alice), nested).await;
    assert_eq!((refused.status, refused.error("thread_root").is_some()), (422, true), "{:?}", refused.body);
    let refused = mesh.api.get_as(&format!("{path}/{root}/thread?before=x"), &alice).await;
    assert_eq!((refused.status, refused.error("before").is_some()), (422, true), "{:?}", refused.body);
    let eve = token(&mesh.api.register("eve", PASSWORD).await);
    assert_eq!(mesh.api.get_as(&format!("{path}/{root}/thread"), &eve).await.status, 404);
    assert_eq!(mesh.api.get_as(&format!("{path}/999/thread"), &alice).await.error("message"), Some("not found"));
    alice_ws.close().await;
    bob_ws.close().await;
    mesh.shutdown().await;
}
