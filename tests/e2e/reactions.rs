//! Reactions end to end: added and removed over REST, carried by every message view, and each
//! change a `reaction` frame on the members' sockets, replayed by resume.

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(reactions_over_rest_and_socket);

fn reactions(message: &Value) -> Vec<(String, u64, bool)> {
    message["reactions"]
        .as_array()
        .expect("a message carries its reactions")
        .iter()
        .map(|r| (r["emoji"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap(), r["me"].as_bool().unwrap()))
        .collect()
}

fn reaction(emoji: &str, count: u64, me: bool) -> (String, u64, bool) {
    (emoji.to_owned(), count, me)
}

async fn reactions_over_rest_and_socket(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let eve = token(&mesh.api.register("eve", PASSWORD).await);
    let direct = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = direct.body["conversation"]["id"].as_str().unwrap().to_owned();
    let sent = mesh
        .api
        .post(&format!("/api/conversations/{id}/messages"), Some(&alice), json!({"client_id": "a-1", "content": "hi"}))
        .await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert_eq!(reactions(&sent.body["message"]), [], "a new message has none");
    let seq = sent.body["message"]["seq"].as_i64().unwrap();
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let path = format!("/api/conversations/{id}/messages/{seq}/reactions");

    let added = mesh.api.post(&path, Some(&bob), json!({"emoji": "🎉"})).await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(reactions(&added.body["message"]), [reaction("🎉", 1, true)]);
    let frame = alice_ws.next_of("reaction").await;
    assert_eq!(
        (&frame["conversation_id"], &frame["message_seq"], &frame["emoji"], &frame["added"], &frame["by"]),
        (&json!(id), &json!(seq), &json!("🎉"), &json!(true), &json!("bob")),
        "{frame}"
    );
    let reaction_seq = frame["seq"].as_i64().unwrap();
    assert!(reaction_seq > seq && frame["at"].is_string(), "{frame}");
    assert_eq!(mesh.api.post(&path, Some(&bob), json!({"emoji": "🎉"})).await.status, 200, "adding twice is fine");
    let thumbs = mesh.api.post(&path, Some(&alice), json!({"emoji": ":thumbsup:"})).await;
    assert_eq!(reactions(&thumbs.body["message"]), [reaction("🎉", 1, false), reaction(":thumbsup:", 1, true)]);
    assert_eq!(alice_ws.next_of("reaction").await["emoji"], ":thumbsup:", "the twice-added one made no frame");

    // Every view: history, the conversation list's last message.
    let history = mesh.api.get_as(&format!("/api/conversations/{id}/messages"), &bob).await;
    assert_eq!(reactions(&history.body["messages"][0]), [reaction("🎉", 1, true), reaction(":thumbsup:", 1, false)]);
    let list = mesh.api.get_as("/api/conversations", &bob).await;
    let last = &list.body["conversations"][0]["last_message"];
    assert_eq!(reactions(last), [reaction("🎉", 1, true), reaction(":thumbsup:", 1, false)]);

    // Removing (the emoji percent-encoded in the path) is idempotent.
    let removed = mesh.api.delete_as(&format!("{path}/🎉"), &bob).await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(reactions(&removed.body["message"]), [reaction(":thumbsup:", 1, false)]);
    let frame = alice_ws.next_of("reaction").await;
    assert_eq!((&frame["emoji"], &frame["added"]), (&json!("🎉"), &json!(false)));
    assert_eq!(mesh.api.delete_as(&format!("{path}/🎉"), &bob).await.status, 200);

    // Bad input names the field; strangers and missing messages are 404.
    for bad in [json!({"emoji": "🎉🎉"}), json!({"emoji": ""}), json!({"emoji": ":no good:"}), json!({})] {
        let refused = mesh.api.post(&path, Some(&bob), bad.clone()).await;
        assert_eq!(refused.status, 422, "{bad}: {:?}", refused.body);
        assert!(refused.error("emoji").is_some(), "{bad}: {:?}", refused.body);
    }
    let refused = mesh.api.delete_as(&format!("{path}/two%20words"), &bob).await;
    assert_eq!((refused.status, refused.error("emoji").is_some()), (422, true), "{:?}", refused.body);
    assert_eq!(mesh.api.post(&path, Some(&eve), json!({"emoji": "🎉"})).await.status, 404);
    let missing = format!("/api/conversations/{id}/messages/999/reactions");
    assert_eq!(mesh.api.post(&missing, Some(&bob), json!({"emoji": "🎉"})).await.error("message"), Some("not found"));

    // A socket that was away gets the changes it missed on resume, in order.
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    bob_ws.send(json!({"type": "resume", "conversations": {id.clone(): seq}})).await;
    let mut replayed = Vec::new();
    loop {
        let frame = bob_ws.next().await;
        match frame["type"].as_str().unwrap() {
            "resumed" => break,
            "reaction" => {
                replayed.push((frame["seq"].as_i64().unwrap(), frame["emoji"].clone(), frame["added"].clone()))
            }
            _ => {}
        }
    }
    let emoji: Vec<(&Value, &Value)> = replayed.iter().map(|(_, e, a)| (e, a)).collect();
    assert_eq!(
        emoji,
        [(&json!("🎉"), &json!(true)), (&json!(":thumbsup:"), &json!(true)), (&json!("🎉"), &json!(false))]
    );
    assert_eq!(replayed[0].0, reaction_seq);
    alice_ws.close().await;
    bob_ws.close().await;
    mesh.shutdown().await;
}
