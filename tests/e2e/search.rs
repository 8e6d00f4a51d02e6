//! Message search over REST: what a client finds, whatever way the message was sent, and the
//! errors a client's mistakes get.

use serde_json::json;
use soulchat_testkit::{Backend, Mesh, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(search_over_rest_finds_socket_and_rest_sends);

async fn search_over_rest_finds_socket_and_rest_sends(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let opened = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = opened.body["conversation"]["id"].as_str().unwrap().to_owned();

    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    let frame = json!({"type": "send", "conversation_id": id, "client_id": "b-1", "content": "Meet me at the Lighthouse", "kind": "text"});
    bob_ws.send(frame).await;
    let by_socket = bob_ws.next_of("ack").await["message"]["seq"].as_i64().unwrap();
    let body = json!({"client_id": "a-1", "content": "the lighthouse keeper says hi", "kind": "text"});
    let by_rest = mesh.api.post(&format!("/api/conversations/{id}/messages"), Some(&alice), body).await;
    let by_rest = by_rest.body["message"]["seq"].as_i64().unwrap();

    let found = mesh.api.get_as("/api/search/messages?q=lighth", &alice).await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    let seqs: Vec<i64> =
        found.body["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs.len(), 2, "{:?}", found.body);
    assert!(seqs.contains(&by_socket) && seqs.contains(&by_rest));
    assert!(found.body["next_cursor"].is_null());
    let senders: Vec<&str> =
        found.body["messages"].as_array().unwrap().iter().map(|m| m["sender"].as_str().unwrap()).collect();
    assert!(senders.contains(&"bob") && senders.contains(&"alice"), "senders by username: {senders:?}");

    let both = mesh.api.get_as(&format!("/api/search/messages?q=keeper%20lighthouse&conversation_id={id}"), &bob).await;
    assert_eq!(both.body["messages"][0]["seq"].as_i64(), Some(by_rest), "{:?}", both.body);
    assert_eq!(both.body["messages"].as_array().unwrap().len(), 1);
    let outsider = mesh.api.get_as("/api/search/messages?q=lighthouse", &carol).await;
    assert_eq!((outsider.status, outsider.body["messages"].as_array().map(Vec::len)), (200, Some(0)));

    // A client's mistakes: 4xx naming the field.
    let not_mine = mesh.api.get_as(&format!("/api/search/messages?q=lighthouse&conversation_id={id}"), &carol).await;
    assert_eq!((not_mine.status, not_mine.error("conversation")), (404, Some("not found")));
    for (query, field) in [
        ("", "q"),
        ("?q=", "q"),
        ("?q=a%20to", "q"),
        ("?q=lighthouse&cursor=-3", "cursor"),
        ("?q=lighthouse&limit=0", "limit"),
    ] {
        let refused = mesh.api.get_as(&format!("/api/search/messages{query}"), &alice).await;
        assert_eq!(refused.status, 422, "{query}: {:?}", refused.body);
        assert!(refused.error(field).is_some(), "{query}: {:?}", refused.body);
    }
    let long = format!("/api/search/messages?q={}", "x".repeat(201));
    assert!(mesh.api.get_as(&long, &alice).await.error("q").unwrap().contains("too long"));
    assert_eq!(mesh.api.get("/api/search/messages?q=lighthouse").await.status, 401);
    mesh.shutdown().await;
}
