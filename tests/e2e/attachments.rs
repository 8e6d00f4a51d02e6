//! Attachments over REST and the WebSocket: upload, send in a message, read back with access
//! control and ranges, and the two ways one is deleted.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use soulchat_testkit::{Backend, Mesh, Options, Socket, each_backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{PASSWORD, token};

/// A real 1x1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn upload(mesh: &Mesh, token: &str, name: &str, content_type: &str, bytes: &[u8]) -> String {
    let stored = mesh.api.upload(&format!("/api/attachments?name={name}"), token, content_type, bytes.to_vec()).await;
    assert_eq!(stored.status, 201, "{:?}", stored.body);
    stored.body["attachment"]["id"].as_str().unwrap().to_owned()
}

/// Polls until `path` answers `status` to `token` (the sweep runs in the background).
async fn eventually(mesh: &Mesh, path: &str, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (now, _, _) = mesh.api.download(path, token, &[]).await;
        if now == status {
            return;
        }
        assert!(Instant::now() < deadline, "{path} still answers {now}, not {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

each_backend!(attachments_are_uploaded_sent_read_by_members_and_deleted_with_their_message);

async fn attachments_are_uploaded_sent_read_by_members_and_deleted_with_their_message(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let bob = token(&mesh.api.register("bob", PASSWORD).await);
    let carol = token(&mesh.api.register("carol", PASSWORD).await);
    let opened = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = opened.body["conversation"]["id"].as_str().unwrap().to_owned();

    // Upload: 201 with the sniffed type, which wins over the declared one.
    let stored = mesh.api.upload("/api/attachments?name=dot%20%C3%A9.png", &alice, "image/jpeg", PNG.to_vec()).await;
    assert_eq!(stored.status, 201, "{:?}", stored.body);
    let image = stored.body["attachment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        stored.body["attachment"],
        json!({"id": image, "name": "dot é.png", "size": PNG.len(), "content_type": "image/png"})
    );
    let text = b"hello, attachments".repeat(10);
    let file = upload(&mesh, &alice, "notes.txt", "text/plain; charset=utf-8", &text).await;

    // Refusals name the field.
    let fake = mesh.api.upload("/api/attachments?name=x.png", &alice, "image/png", b"not a png at all".to_vec()).await;
    assert_eq!((fake.status, fake.error("content_type").is_some()), (422, true), "{:?}", fake.body);
    let nameless = mesh.api.upload("/api/attachments", &alice, "text/plain", b"x".to_vec()).await;
    assert_eq!((nameless.status, nameless.error("name")), (422, Some("can't be blank")));
    let pathy = mesh.api.upload("/api/attachments?name=..%2Fetc", &alice, "text/plain", b"x".to_vec()).await;
    assert_eq!((pathy.status, pathy.error("name").is_some()), (422, true));
    let anonymous = mesh.api.upload("/api/attachments?name=a.txt", "nope", "text/plain", b"x".to_vec()).await;
    assert_eq!(anonymous.status, 401);

    // Before it is sent only the uploader reads it.
    let (status, headers, bytes) = mesh.api.download(&format!("/api/attachments/{image}"), &alice, &[]).await;
    assert_eq!((status, bytes.as_slice()), (200, PNG));
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-disposition"], "attachment; filename=\"dot _.png\"; filename*=UTF-8''dot%20%C3%A9.png");
    assert_eq!(mesh.api.download(&format!("/api/attachments/{image}"), &bob, &[]).await.0, 404);

    // Sent over REST, then over the WebSocket.
    let path = format!("/api/conversations/{id}/messages");
    let body = json!({"client_id": "img-1", "kind": "image", "attachment_id": image, "metadata": {"w": "1"}});
    let sent = mesh.api.post(&path, Some(&alice), body).await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    assert_eq!(
        (sent.body["message"]["attachment_id"].as_str(), &sent.body["message"]["url"]),
        (Some(&*image), &json!(null))
    );
    let image_seq = sent.body["message"]["seq"].as_i64().unwrap();
    let mut alice_ws = Socket::connect(&mesh.api.base, &alice).await;
    let frame =
        json!({"type": "send", "conversation_id": id, "client_id": "file-1", "kind": "file", "attachment_id": file});
    alice_ws.send(frame).await;
    let ack = alice_ws.next_of("ack").await;
    assert_eq!(ack["message"]["attachment_id"].as_str(), Some(&*file), "{ack:?}");

    // Members read; anyone else gets 404.
    let (status, headers, bytes) = mesh.api.download(&format!("/api/attachments/{file}"), &bob, &[]).await;
    assert_eq!((status, bytes), (200, text.clone()));
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["content-disposition"], "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt");
    assert_eq!(mesh.api.download(&format!("/api/attachments/{image}"), &bob, &[]).await.0, 200);
    assert_eq!(mesh.api.download(&format!("/api/attachments/{image}"), &carol, &[]).await.0, 404);
    assert_eq!(mesh.api.download("/api/attachments/no-such-thing", &bob, &[]).await.0, 404);
    let history = mesh.api.get_as(&path, &bob).await;
    assert_eq!(history.body["messages"][0]["attachment_id"].as_str(), Some(&*image), "{:?}", history.body);

    // Ranges.
    let file_path = format!("/api/attachments/{file}");
    let (status, headers, bytes) = mesh.api.download(&file_path, &bob, &[("Range", "bytes=2-5")]).await;
    assert_eq!((status, bytes.as_slice()), (206, &text[2..=5]));
    assert_eq!(headers["content-range"], format!("bytes 2-5/{}", text.len()));
    let (status, _, bytes) = mesh.api.download(&file_path, &bob, &[("Range", "bytes=-4")]).await;
    assert_eq!((status, bytes.as_slice()), (206, &text[text.len() - 4..]));
    for bad in ["bytes=5000-", "bytes=9-3", "bytes=0-1,4-5", "lines=1-2"] {
        let (status, headers, _) = mesh.api.download(&file_path, &bob, &[("Range", bad)]).await;
        assert_eq!(status, 416, "{bad}");
        assert_eq!(headers["content-range"], format!("bytes */{}", text.len()), "{bad}");
    }

    // Sends that may not carry it.
    for (body, field) in [
        (
            json!({"client_id": "x-1", "kind": "image", "attachment_id": image, "url": "https://cdn.example/a.png"}),
            "attachment_id",
        ),
        (json!({"client_id": "x-2", "kind": "text", "content": "hi", "attachment_id": image}), "attachment_id"),
        (json!({"client_id": "x-3", "kind": "file", "attachment_id": "a.b"}), "attachment_id"),
        (json!({"client_id": "x-4", "kind": "file"}), "url"),
        (json!({"client_id": "x-5", "kind": "image", "attachment_id": file}), "attachment_id"),
    ] {
        let refused = mesh.api.post(&path, Some(&alice), body.clone()).await;
        assert_eq!((refused.status, refused.error(field).is_some()), (422, true), "{body}: {:?}", refused.body);
    }
    let not_hers = json!({"client_id": "b-1", "kind": "image", "attachment_id": image});
    let refused = mesh.api.post(&path, Some(&bob), not_hers).await;
    assert_eq!((refused.status, refused.error("attachment_id")), (422, Some("not found")));

    // Deleting the last message that carries it deletes it: not even the uploader reads it.
    let deleted = mesh.api.delete_as(&format!("{path}/{image_seq}"), &bob).await;
    assert_eq!(deleted.status, 403, "bob may not delete alice's message in a direct conversation");
    assert_eq!(mesh.api.delete_as(&format!("{path}/{image_seq}"), &alice).await.status, 204);
    assert_eq!(mesh.api.download(&format!("/api/attachments/{image}"), &bob, &[]).await.0, 404);
    assert_eq!(mesh.api.download(&format!("/api/attachments/{image}"), &alice, &[]).await.0, 404);
    assert_eq!(mesh.api.download(&file_path, &bob, &[]).await.0, 200, "the other attachment stays");
    // A late retry of that send is still its duplicate, not a new send of a missing attachment.
    let body = json!({"client_id": "img-1", "kind": "image", "attachment_id": image, "metadata": {"w": "1"}});
    let retried = mesh.api.post(&path, Some(&alice), body).await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(
        (retried.body["message"]["seq"].as_i64(), retried.body["message"]["deleted"].as_bool()),
        (Some(image_seq), Some(true))
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn attachments_over_the_size_limit_or_too_slow_are_refused() {
    let mut options = Options::new(Backend::Sqlite);
    options.attachment_max_bytes = 1000;
    options.connections.body_timeout = Duration::from_secs(1);
    let mesh = Mesh::start_with(options).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    let fits = mesh.api.upload("/api/attachments?name=a.bin", &alice, "application/octet-stream", vec![7; 1000]).await;
    assert_eq!((fits.status, fits.body["attachment"]["size"].as_u64()), (201, Some(1000)));
    let over = mesh.api.upload("/api/attachments?name=b.bin", &alice, "application/octet-stream", vec![7; 1001]).await;
    assert_eq!((over.status, over.error("body")), (413, Some("is too large (maximum is 1000 bytes)")));

    // Without a length up front, the stream is cut off at the limit.
    let address = mesh.api.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /api/attachments?name=chunked.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Token {alice}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A body that stops arriving: 408, the connection let go.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/attachments?name=slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Token {alice}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 900\r\n\r\nonly the start"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    mesh.shutdown().await;
}

#[tokio::test]
async fn unsent_attachments_and_cut_off_chunks_are_swept_and_sent_ones_stay() {
    let mut options = Options::new(Backend::Sqlite);
    options.chat.attachment_unused = Duration::from_secs(1);
    let mesh = Mesh::start_with(options).await;
    let alice = token(&mesh.api.register("alice", PASSWORD).await);
    mesh.api.register("bob", PASSWORD).await;
    let opened = mesh.api.post("/api/conversations/direct", Some(&alice), json!({"username": "bob"})).await;
    let id = opened.body["conversation"]["id"].as_str().unwrap().to_owned();
    let unsent = upload(&mesh, &alice, "draft.txt", "text/plain", b"never sent").await;
    let sent = upload(&mesh, &alice, "sent.txt", "text/plain", b"sent at once").await;
    let body = json!({"client_id": "f-1", "kind": "file", "attachment_id": sent});
    assert_eq!(mesh.api.post(&format!("/api/conversations/{id}/messages"), Some(&alice), body).await.status, 201);

    // The chunks of an upload cut off: no object names them.
    let js = async_nats::jetstream::new(mesh.client().await);
    let orphan = "$O.soulchat_attachments.C.cutoffupload";
    js.publish(orphan, "half an upload".into()).await.unwrap().await.unwrap();

    eventually(&mesh, &format!("/api/attachments/{unsent}"), &alice, 404).await;
    let stream = js.get_stream("OBJ_soulchat_attachments").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let subjects: Vec<String> = stream
            .info_with_subjects("$O.soulchat_attachments.C.>")
            .await
            .unwrap()
            .map(|s| s.unwrap().0)
            .collect()
            .await;
        if !subjects.iter().any(|s| s == orphan) {
            assert_eq!(subjects.len(), 1, "the sent attachment's chunks stay: {subjects:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the orphaned chunks are still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(mesh.api.download(&format!("/api/attachments/{sent}"), &alice, &[]).await.0, 200);
    mesh.shutdown().await;
}
