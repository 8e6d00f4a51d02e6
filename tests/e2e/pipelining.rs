//! One socket, several calls in flight: a slow call holds up nothing else, a conversation's
//! sends keep their order, and the sender's own messages come back as acks only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Role, Socket};
use sqlx::Executor;

use crate::{PASSWORD, token};

async fn open_direct(mesh: &Mesh, token: &str, with: &str) -> String {
    let r = mesh.api.post("/api/conversations/direct", Some(token), json!({"username": with})).await;
    r.body["conversation"]["id"].as_str().expect("a conversation").to_owned()
}

fn send(conversation_id: &str, client_id: &str) -> Value {
    json!({"type": "send", "conversation_id": conversation_id, "client_id": client_id, "content": client_id})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_send_holds_up_nothing_else() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let id = open_direct(&mesh, &alice, "bob").await;
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }

    // The chat worker cannot write while the test holds its database's write lock: the send
    // waits out the gateway's request timeout (2 s here).
    let mut db = mesh.database(Role::Chat).await;
    db.execute("BEGIN IMMEDIATE").await.unwrap();
    alice_ws.send(send(&id, "stuck")).await;
    let asked = Instant::now();
    alice_ws.send(json!({"type": "typing", "conversation_id": id})).await;
    alice_ws.send(json!({"type": "ping"})).await;
    loop {
        let frame = alice_ws.next().await;
        assert!(
            frame["type"] != "ack" && frame["type"] != "error",
            "the stuck send answered first: {frame} after {:?}",
            asked.elapsed()
        );
        if frame["type"] == "pong" {
            break;
        }
    }
    assert!(asked.elapsed() < Duration::from_secs(1), "the ping waited {:?}", asked.elapsed());
    assert_eq!(bob_ws.next_of("typing").await["conversation_id"], id.as_str(), "typing is not held up either");
    assert!(asked.elapsed() < Duration::from_secs(1), "the typing notice waited {:?}", asked.elapsed());

    let error = alice_ws.next_of("error").await;
    assert_eq!(error["client_id"], "stuck", "{error}");
    assert!(error["code"].as_u64().is_some_and(|code| code >= 500), "{error}");

    // Once the lock goes the worker stores the message after all; unacknowledged, it reaches
    // the sending socket as a message, and the socket keeps working.
    db.execute("ROLLBACK").await.unwrap();
    let late = alice_ws.next_of("message").await;
    assert_eq!(late["message"]["client_id"], "stuck", "{late}");
    alice_ws.send(send(&id, "after")).await;
    let ack = alice_ws.next_of("ack").await;
    assert_eq!(
        (ack["client_id"].as_str(), ack["message"]["seq"].as_i64()),
        (Some("after"), late["seq"].as_i64().map(|s| s + 1))
    );
    mesh.shutdown().await;
}

/// Sends `frames` without waiting, then reads until every one is acknowledged: the seqs by
/// `client_id`. Any `message` frame of the sender's own fails the test.
async fn acks(ws: &mut Socket, frames: &[Value]) -> HashMap<String, i64> {
    for frame in frames {
        ws.send(frame.clone()).await;
    }
    let mut seqs = HashMap::new();
    while seqs.len() < frames.len() {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("ack") => {
                let client_id = frame["client_id"].as_str().unwrap().to_owned();
                assert!(seqs.insert(client_id, frame["message"]["seq"].as_i64().unwrap()).is_none(), "acked twice");
            }
            Some("presence") => {}
            _ => panic!("while acks were due: {frame}"),
        }
    }
    assert_eq!(ws.next_within(Duration::from_millis(300)).await, None, "nothing follows the acks");
    seqs
}

/// The seqs of `client_ids`, in that order, strictly increase.
fn in_order(seqs: &HashMap<String, i64>, client_ids: &[String]) {
    let ordered: Vec<i64> = client_ids.iter().map(|id| seqs[id]).collect();
    assert!(ordered.windows(2).all(|w| w[0] < w[1]), "seqs out of the order sent: {ordered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_keep_their_order_and_are_not_echoed() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let direct = open_direct(&mesh, &alice, "bob").await;
    let group = mesh.api.post("/api/conversations", Some(&alice), json!({"name": "G", "members": ["bob"]})).await;
    let group = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let mut bob_ws = Socket::connect(&mesh.api.base, &bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        ws.send(json!({"type": "ping"})).await;
        ws.next_of("pong").await;
    }

    // 50 to one conversation: more than a socket keeps in flight, so the session also pauses.
    let ids: Vec<String> = (0..50).map(|n| format!("d{n}")).collect();
    let seqs = acks(&mut alice_ws, &ids.iter().map(|id| send(&direct, id)).collect::<Vec<_>>()).await;
    in_order(&seqs, &ids);
    for id in &ids {
        let message = bob_ws.next_of("message").await;
        assert_eq!(message["message"]["client_id"], id.as_str(), "the other side gets them in order too");
    }

    // Two conversations interleaved: each keeps its own order.
    let (d, g): (Vec<String>, Vec<String>) = (0..30).map(|n| (format!("i{n}-d"), format!("i{n}-g"))).unzip();
    let frames: Vec<Value> = d.iter().zip(&g).flat_map(|(d, g)| [send(&direct, d), send(&group, g)]).collect();
    let seqs = acks(&mut alice_ws, &frames).await;
    in_order(&seqs, &d);
    in_order(&seqs, &g);

    // The cursors stayed right: the next message from someone else is delivered, not a gap.
    let r = mesh
        .api
        .post(&format!("/api/conversations/{direct}/messages"), Some(&bob), json!({"client_id": "b", "content": "hi"}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let message = alice_ws.next_of("message").await;
    assert_eq!(message["seq"].as_i64(), Some(seqs[d.last().unwrap()] + 1), "{message}");
    mesh.shutdown().await;
}
