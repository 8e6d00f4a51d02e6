//! Pins end to end: who may pin over REST, the pinned list, and each change a `pin` frame on the
//! members' sockets, replayed by resume.

use serde_json::json;
use soulchat_testkit::{Backend, Mesh, Socket, each_backend};

use crate::{PASSWORD, token};

each_backend!(pins_over_rest_and_socket);

async fn pins_over_rest_and_socket(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let olga = token(&mesh.api.register("olga", PASSWORD).await);
    let mark = token(&mesh.api.register("mark", PASSWORD).await);
    let eve = token(&mesh.api.register("eve", PASSWORD).await);
    let group = mesh.api.post("/api/conversations", Some(&olga), json!({"name": "Team", "members": ["mark"]})).await;
    let id = group.body["conversation"]["id"].as_str().unwrap().to_owned();
    let sent = mesh
        .api
        .post(
            &format!("/api/conversations/{id}/messages"),
            Some(&mark),
            json!({"client_id": "m-1", "content": "rules"}),
        )
        .await;
    let seq = sent.body["message"]["seq"].as_i64().unwrap();
    let mut mark_ws = Socket::connect(&mesh.api.base, &mark).await;

    let refused = mesh.api.post(&format!("/api/conversations/{id}/pins/{seq}"), Some(&mark), json!({})).await;
    assert_eq!((refused.status, refused.error("conversation").is_some()), (403, true), "{:?}", refused.body);
    assert_eq!(mesh.api.post(&format!("/api/conversations/{id}/pins/{seq}"), Some(&eve), json!({})).await.status, 404);
    let missing = mesh.api.post(&format!("/api/conversations/{id}/pins/999"), Some(&olga), json!({})).await;
    assert_eq!((missing.status, missing.error("message")), (404, Some("not found")));

    let pinned = mesh.api.post(&format!("/api/conversations/{id}/pins/{seq}"), Some(&olga), json!({})).await;
    assert_eq!(pinned.status, 200, "{:?}", pinned.body);
    let pin = &pinned.body["pin"];
    assert_eq!((&pin["message"]["content"], &pin["pinned_by"]), (&json!("rules"), &json!("olga")), "{pin}");
    assert!(pin["pinned_at"].is_string());
    let frame = mark_ws.next_of("pin").await;
    assert_eq!(
        (&frame["conversation_id"], &frame["message_seq"], &frame["pinned"], &frame["by"]),
        (&json!(id), &json!(seq), &json!(true), &json!("olga")),
        "{frame}"
    );
    let pin_seq = frame["seq"].as_i64().unwrap();

    let listed = mesh.api.get_as(&format!("/api/conversations/{id}/pins"), &mark).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["pins"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["pins"][0]["message"]["seq"], seq);
    assert_eq!(mesh.api.get_as(&format!("/api/conversations/{id}/pins"), &eve).await.status, 404);

    assert_eq!(mesh.api.delete_as(&format!("/api/conversations/{id}/pins/{seq}"), &mark).await.status, 403);
    assert_eq!(mesh.api.delete_as(&format!("/api/conversations/{id}/pins/{seq}"), &olga).await.status, 204);
    assert_eq!(mesh.api.delete_as(&format!("/api/conversations/{id}/pins/{seq}"), &olga).await.status, 204);
    let frame = mark_ws.next_of("pin").await;
    assert_eq!((&frame["message_seq"], &frame["pinned"]), (&json!(seq), &json!(false)));
    let listed = mesh.api.get_as(&format!("/api/conversations/{id}/pins"), &mark).await;
    assert_eq!(listed.body["pins"], json!([]));

    // Resume replays both changes to a socket that was away.
    let mut olga_ws = Socket::connect(&mesh.api.base, &olga).await;
    olga_ws.send(json!({"type": "resume", "conversations": {id.clone(): seq}})).await;
    let mut pins = Vec::new();
    loop {
        let frame = olga_ws.next().await;
        match frame["type"].as_str().unwrap() {
            "resumed" => break,
            "pin" => pins.push((frame["seq"].as_i64().unwrap(), frame["pinned"].as_bool().unwrap())),
            _ => {}
        }
    }
    assert_eq!(pins, [(pin_seq, true), (pin_seq + 1, false)]);
    mark_ws.close().await;
    olga_ws.close().await;
    mesh.shutdown().await;
}
