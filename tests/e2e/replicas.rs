//! Two chat workers on one database, loaded with concurrent sends to the same conversations, keep
//! each conversation's `seq` gap-free: the stream, history and resume agree on 1..=N, and every
//! acknowledged message is stored under the seq its acknowledgement named.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use soulchat_subjects::streams::{CHAT_STREAM, chat_events};
use soulchat_testkit::{Api, Backend, Mesh, Role, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(two_chat_workers_keep_seq_gap_free_under_concurrent_sends);

const USERS: [&str; 4] = ["ann", "ben", "cat", "dan"];
/// Concurrent senders per user and conversation, and the sends of each.
const LANES: usize = 4;
const SENDS: usize = 10;

/// Sends `SENDS` messages one after the other: `(client_id, seq)` of each acknowledged one.
async fn lane(api: Api, token: String, conversation: String, lane: String) -> Vec<(String, i64)> {
    let mut acked = Vec::new();
    for n in 0..SENDS {
        let client_id = format!("{lane}-{n}");
        let body = json!({"client_id": client_id, "content": client_id});
        let r = api.post(&format!("/api/conversations/{conversation}/messages"), Some(&token), body).await;
        assert_eq!(r.body["message"]["conversation_id"], conversation.as_str(), "{:?}", r.body);
        assert_eq!(r.status, 201, "{:?}", r.body);
        acked.push((client_id, r.body["message"]["seq"].as_i64().expect("a seq")));
    }
    acked
}

/// `send` requests each chat worker instance answered, from the service API's stats.
async fn sends_per_instance(mesh: &Mesh) -> Vec<u64> {
    let client = mesh.client().await;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply("$SRV.STATS.soulchat-chat", inbox, "".into()).await.unwrap();
    let mut counts = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout(Duration::from_millis(500), replies.next()).await {
        let stats: Value = serde_json::from_slice(&reply.payload).unwrap();
        let endpoints = stats["endpoints"].as_array().cloned().unwrap_or_default();
        let send = endpoints.iter().find(|e| e["subject"].as_str().is_some_and(|s| s.ends_with(".send")));
        counts.push(send.and_then(|e| e["num_requests"].as_u64()).unwrap_or(0));
    }
    counts
}

/// The seqs of a conversation's events on `SOULCHAT_CHAT` (from `Nats-Msg-Id`,
/// `<conversation>:<seq>`), in stream order.
async fn stream_seqs(mesh: &Mesh, conversation: &str) -> Vec<i64> {
    let js = async_nats::jetstream::new(mesh.client().await);
    let stream = js.get_stream(CHAT_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: chat_events(conversation),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut seqs = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
        let message = message.unwrap();
        let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
        let id = id.expect("a Nats-Msg-Id");
        let (_, seq) = id.rsplit_once(':').expect("<conversation>:<seq>");
        seqs.push(seq.parse().unwrap());
        message.ack().await.unwrap();
    }
    seqs
}

/// Every message in history as `seq → client_id`.
async fn history(api: &Api, token: &str, conversation: &str) -> BTreeMap<i64, String> {
    let (mut messages, mut after) = (BTreeMap::new(), 0);
    loop {
        let page =
            api.get_as(&format!("/api/conversations/{conversation}/messages?after={after}&limit=100"), token).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for m in page.body["messages"].as_array().unwrap() {
            let seq = m["seq"].as_i64().unwrap();
            let again = messages.insert(seq, m["client_id"].as_str().unwrap_or_default().to_owned());
            assert!(again.is_none(), "seq {seq} twice in history");
        }
        match page.body["next_cursor"].as_i64() {
            Some(next) => after = next,
            None => return messages,
        }
    }
}

/// The seqs a `resume` from the start replays for the conversation, in order.
async fn resumed_seqs(api: &Api, token: &str, conversation: &str) -> Vec<i64> {
    let mut ws = Socket::connect(&api.base, token).await;
    ws.send(json!({"type": "resume", "conversations": {conversation: 0}})).await;
    let mut seqs = Vec::new();
    loop {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("resumed") => break,
            _ if frame["conversation_id"] == conversation => seqs.extend(frame["seq"].as_i64()),
            _ => {}
        }
    }
    ws.close().await;
    seqs
}

async fn two_chat_workers_keep_seq_gap_free_under_concurrent_sends(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    mesh.start_replica(Role::Chat, 1, None).await;
    let mut tokens = Vec::new();
    for name in USERS {
        tokens.push(token(&mesh.api.register(name, PASSWORD).await));
    }
    let mut conversations = Vec::new();
    for name in ["one", "two"] {
        let r =
            mesh.api.post("/api/conversations", Some(&tokens[0]), json!({"name": name, "members": USERS[1..]})).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        conversations.push(r.body["conversation"]["id"].as_str().unwrap().to_owned());
    }

    let mut lanes = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        for (c, conversation) in conversations.iter().enumerate() {
            for l in 0..LANES {
                // A client id is the sender's, whatever the conversation.
                let name = format!("{u}-{c}-{l}");
                lanes.push(tokio::spawn(lane(mesh.api.clone(), token.clone(), conversation.clone(), name)));
            }
        }
    }
    let mut acked: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (k, lane) in lanes.into_iter().enumerate() {
        // Lanes were spawned user by user, conversation by conversation.
        let conversation = &conversations[(k / LANES) % conversations.len()];
        acked.entry(conversation.clone()).or_default().extend(lane.await.unwrap());
    }
    let served = sends_per_instance(&mesh).await;
    assert_eq!(served.len(), 2, "two chat worker instances answer stats: {served:?}");
    assert!(served.iter().all(|&n| n > 0), "both chat workers served sends: {served:?}");

    for conversation in &conversations {
        let sends = &acked[conversation];
        assert_eq!(sends.len(), USERS.len() * LANES * SENDS);
        let acked_seqs: BTreeSet<i64> = sends.iter().map(|(_, seq)| *seq).collect();
        assert_eq!(acked_seqs.len(), sends.len(), "two acknowledgements named the same seq");

        let stream = stream_seqs(&mesh, conversation).await;
        let last = stream.len() as i64;
        assert_eq!(stream, (1..=last).collect::<Vec<_>>(), "the stream's events are 1..=N in order");

        let stored = history(&mesh.api, &tokens[0], conversation).await;
        for (client_id, seq) in sends {
            assert_eq!(stored.get(seq), Some(client_id), "acknowledged {client_id} is in history as seq {seq}");
        }
        assert_eq!(stored.len(), sends.len(), "history holds exactly the acknowledged messages");
        assert!(stored.keys().all(|seq| (1..=last).contains(seq)), "every stored seq is on the stream");

        let resumed = resumed_seqs(&mesh.api, &tokens[1], conversation).await;
        assert_eq!(resumed, stream, "resume replays the stream's seqs");
    }
    mesh.shutdown().await;
}
