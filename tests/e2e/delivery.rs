//! Delivery guarantees over real sockets: every socket of every member gets each event once and
//! in `seq` order across two gateways and two chat workers; a slow client is closed while the
//! others keep receiving; a gateway whose NATS connection is cut and restored loses nothing;
//! logout closes sockets with 4401; sends are idempotent and rate limited over the socket too.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use soulchat_testkit::{Api, Backend, Closed, Mesh, Options, Proxy, RawSocket, Role, Socket, TcpEnd, each_backend};

use crate::{PASSWORD, token};

each_backend!(two_gateways_two_chat_workers_deliver_once_in_order);

/// Collects the `seq`s of `conversation` a socket receives (messages and acks), until `count`.
async fn collect(ws: &mut Socket, conversation: &str, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.len() < count {
        let frame = ws.next().await;
        let seq = match frame["type"].as_str() {
            Some("message") if frame["conversation_id"] == conversation => frame["seq"].as_i64(),
            Some("ack") if frame["message"]["conversation_id"] == conversation => frame["message"]["seq"].as_i64(),
            _ => None,
        };
        seqs.extend(seq);
    }
    seqs
}

fn assert_in_order(who: &str, seqs: &[i64]) {
    let unique: BTreeSet<_> = seqs.iter().collect();
    assert_eq!(unique.len(), seqs.len(), "{who} got an event twice: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{who} got events out of order: {seqs:?}");
}

async fn group(api: &Api, owner: &str, members: &[&str]) -> String {
    let r = api.post("/api/conversations", Some(owner), json!({"name": "g", "members": members})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["conversation"]["id"].as_str().unwrap().to_owned()
}

async fn two_gateways_two_chat_workers_deliver_once_in_order(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    let second = mesh.start_replica(Role::Gateway, 1, None).await.unwrap();
    mesh.start_replica(Role::Chat, 1, None).await;
    let names = ["ann", "ben", "cat"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(token(&mesh.api.register(name, PASSWORD).await));
    }
    let id = group(&mesh.api, &tokens[0], &["ben", "cat"]).await;
    // Every user has a socket on each gateway.
    let mut sockets = Vec::new();
    for t in &tokens {
        sockets.push(Socket::connect(&mesh.api.base, t).await);
        sockets.push(Socket::connect(&second.base, t).await);
    }
    let per_sender = 15;
    let senders: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let api = if i % 2 == 0 { mesh.api.clone() } else { second.clone() };
            let (t, id) = (t.clone(), id.clone());
            tokio::spawn(async move {
                for n in 0..per_sender {
                    let body = json!({"client_id": format!("{i}-{n}"), "content": format!("{i}/{n}")});
                    let r = api.post(&format!("/api/conversations/{id}/messages"), Some(&t), body).await;
                    assert_eq!(r.status, 201, "{:?}", r.body);
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let total = per_sender * tokens.len();
    let mut everyone = None;
    for (n, ws) in sockets.iter_mut().enumerate() {
        let seqs = collect(ws, &id, total).await;
        assert_in_order(&format!("socket {n}"), &seqs);
        assert_eq!(*everyone.get_or_insert_with(|| seqs.clone()), seqs, "every socket sees the same events");
        assert_eq!(ws.next_within(Duration::from_millis(200)).await, None, "nothing more, nothing twice");
    }
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_closed_while_others_keep_receiving() {
    let mut options = Options::new(Backend::Sqlite);
    options.socket_queue = 64;
    let mesh = Mesh::start_with(options).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let id = group(&mesh.api, &alice, &["bob", "carol"]).await;
    let mut slow = Socket::connect_slow(&mesh.api.base, &bob).await;
    let mut fast = Socket::connect(&mesh.api.base, &carol).await;
    let mut sender = Socket::connect(&mesh.api.base, &alice).await;

    let count = 1500;
    let big = "x".repeat(4000);
    let reader_id = id.clone();
    let reader = tokio::spawn(async move {
        let seqs = collect(&mut fast, &reader_id, count).await;
        (fast, seqs)
    });
    for n in 0..count {
        sender.send(json!({"type": "send", "conversation_id": id, "client_id": format!("s{n}"), "content": big})).await;
        sender.next_of("ack").await;
    }
    let (_fast, seqs) = reader.await.unwrap();
    assert_eq!(seqs.len(), count);
    assert_in_order("the fast client", &seqs);

    // The slow client finds, once it reads, that the server gave up on it.
    let (frames, closed) = slow.closed_within(Duration::from_secs(30)).await;
    assert!(frames.len() < count, "the slow client was not buffered without limit ({} frames)", frames.len());
    assert!(matches!(closed, Closed::Code(4000, _) | Closed::Dropped), "{closed:?}");
    assert!(mesh.metric("soulchat_ws_slow_consumer_drops_total").await >= 1.0);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_nats_connection_loses_nothing() {
    let mut mesh = Mesh::start(Backend::Sqlite).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", mesh.nats.port()).parse().unwrap()).await;
    let behind = mesh.start_replica(Role::Gateway, 1, Some(proxy.url())).await.unwrap();
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let id = group(&mesh.api, &alice, &["bob"]).await;
    let mut ws = Socket::connect(&behind.base, &bob).await;
    let send = |n: usize| {
        let (api, alice, id) = (mesh.api.clone(), alice.clone(), id.clone());
        async move {
            let r = api
                .post(
                    &format!("/api/conversations/{id}/messages"),
                    Some(&alice),
                    json!({"client_id": format!("m{n}"), "content": "x"}),
                )
                .await;
            assert_eq!(r.status, 201);
            r.body["message"]["seq"].as_i64().unwrap()
        }
    };
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(send(n).await);
    }
    let mut got = collect(&mut ws, &id, 5).await;
    proxy.cut();
    for n in 5..10 {
        sent.push(send(n).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    // Either the socket carries on with everything, or it is closed with 4000 and the client
    // resumes from the last seq it saw; both end with every message exactly once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < sent.len() && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(15), ws.closed_or_next()).await {
            Ok(Ok(frame)) => {
                if frame["type"] == "message" {
                    got.push(frame["seq"].as_i64().unwrap());
                }
            }
            Ok(Err(closed)) => {
                assert!(matches!(closed, Closed::Code(4000, _)), "{closed:?}");
                ws = Socket::connect(&behind.base, &bob).await;
                let last = *got.last().unwrap();
                ws.send(json!({"type": "resume", "conversations": {id.clone(): last}})).await;
                loop {
                    let frame = ws.next().await;
                    if frame["type"] == "resumed" {
                        break;
                    }
                    if frame["type"] == "message" {
                        got.push(frame["seq"].as_i64().unwrap());
                    }
                }
            }
            Err(_) => break,
        }
    }
    assert_eq!(got, sent, "every message exactly once, in order");
    mesh.shutdown().await;
}

/// A socket closed for a reconnect (4000) while the client is still sending ends in order: the
/// server reads what the client sent until the client's own close, so the connection is not
/// reset (a reset can destroy the close frame before the client reads it: it would see 1006, not
/// the 4000 that tells it to resume).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closed_to_resume_ends_in_order_while_the_client_sends() {
    let mut mesh = Mesh::start(Backend::Sqlite).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", mesh.nats.port()).parse().unwrap()).await;
    let behind = mesh.start_replica(Role::Gateway, 1, Some(proxy.url())).await.unwrap();
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    mesh.api.register("bob", PASSWORD).await;
    let id = group(&mesh.api, &alice, &["bob"]).await;
    let mut ws = RawSocket::connect(&behind.base, &alice).await;
    ws.send(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
    // Sends the gateway cannot answer while cut: the first fill the socket's calls in flight, the
    // rest wait unread in the connection when the gateway closes it.
    proxy.cut();
    for n in 0..2000 {
        ws.send(json!({"type": "send", "conversation_id": id, "client_id": format!("m{n}"), "content": "x"})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    assert_eq!(ws.close_code(Duration::from_secs(20)).await, 4000);
    assert_eq!(ws.answer_close().await, TcpEnd::Orderly);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_the_socket_and_sends_are_idempotent_and_limited() {
    let mut options = Options::new(Backend::Sqlite);
    options.send_limit = 5;
    let mesh = Mesh::start_with(options).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let r = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = r.body["conversation"]["id"].as_str().unwrap().to_owned();
    let mut a = Socket::connect(&mesh.api.base, &alice).await;
    let mut b = Socket::connect(&mesh.api.base, &bob).await;

    // The same client_id twice: the same message, delivered once.
    let frame = json!({"type": "send", "conversation_id": id, "client_id": "once", "content": "hi"});
    a.send(frame.clone()).await;
    let first = a.next_of("ack").await;
    a.send(frame).await;
    let second = a.next_of("ack").await;
    assert_eq!(first["message"]["seq"], second["message"]["seq"]);
    assert_eq!(b.next_of("message").await["seq"], first["message"]["seq"]);
    assert_eq!(b.next_within(Duration::from_millis(300)).await, None);

    // Past the per-user limit: an error frame over the socket, 429 over REST.
    let mut limited = None;
    for n in 0..10 {
        a.send(json!({"type": "send", "conversation_id": id, "client_id": format!("burst{n}"), "content": "x"})).await;
        let answer = a.next().await;
        if answer["type"] == "error" {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the burst was limited");
    assert_eq!(
        (limited["code"].as_u64(), limited["client_id"].as_str().map(|c| c.starts_with("burst"))),
        (Some(429), Some(true))
    );
    let rest = mesh
        .api
        .post(&format!("/api/conversations/{id}/messages"), Some(&alice), json!({"client_id": "r", "content": "x"}))
        .await;
    assert_eq!(rest.status, 429);
    assert!(rest.headers.contains_key("retry-after"));
    assert!(mesh.metric(r#"soulchat_limit_refusals_total{limit="send"}"#).await >= 2.0);

    // Logout revokes the token: its socket closes with 4401.
    assert_eq!(mesh.api.post("/api/users/logout", Some(&bob), json!({})).await.status, 204);
    let (_, closed) = b.closed_within(Duration::from_secs(5)).await;
    assert!(matches!(closed, Closed::Code(4401, _)), "{closed:?}");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_removes_its_memberships() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    token(&mesh.api.register("carol", PASSWORD).await);
    let id = group(&mesh.api, &alice, &["bob", "carol"]).await;
    assert_eq!(mesh.api.delete_as("/api/user", &bob).await.status, 204);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = mesh.api.get_as(&format!("/api/conversations/{id}"), &alice).await;
        if c.body["conversation"]["member_count"] == 2 {
            let members: Vec<&str> = c.body["conversation"]["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["username"].as_str())
                .collect();
            assert_eq!(members.len(), 2);
            assert!(!members.contains(&"bob"), "{members:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob is still a member: {:?}", c.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mesh.shutdown().await;
}
