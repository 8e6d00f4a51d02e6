//! Bad input gets a clear error naming what is wrong, and never a 500.

use reqwest::Method;
use serde_json::json;
use soulchat_testkit::{Backend, Mesh};

use crate::PASSWORD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_invalid_requests() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let api = &mesh.api;

    let malformed = api.send_raw(Method::POST, "/api/users", None, Some(b"{\"user\": {".to_vec())).await;
    assert_eq!((malformed.status, malformed.error("body")), (400, Some("is invalid")));

    let wrong_type =
        api.post("/api/users", None, json!({"user": {"username": 42, "email": "x@y.z", "password": PASSWORD}})).await;
    assert_eq!(wrong_type.status, 422, "{:?}", wrong_type.body);
    assert!(wrong_type.error("username").is_some());

    let unwrapped = api.post("/api/users", None, json!({"username": "x"})).await;
    assert_eq!((unwrapped.status, unwrapped.error("user")), (422, Some("can't be blank")));

    let blank = api.post("/api/users", None, json!({"user": {}})).await;
    assert_eq!(blank.status, 422);
    for field in ["username", "email", "password"] {
        assert_eq!(blank.error(field), Some("can't be blank"), "{field}: {:?}", blank.body);
    }

    let invalid = api
        .post("/api/users", None, json!({"user": {"username": "a b", "email": "nope", "password": "1234567"}}))
        .await;
    assert_eq!(invalid.status, 422);
    assert!(invalid.error("username").unwrap().starts_with("is invalid"));
    assert_eq!(invalid.error("email"), Some("is invalid"));
    assert!(invalid.error("password").unwrap().contains("minimum is 8"));

    let long = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "longpw", "email": "l@p.w", "password": "x".repeat(129)}}),
        )
        .await;
    assert!(long.error("password").unwrap().contains("maximum is 128"));

    let huge = api.send_raw(Method::POST, "/api/users", None, Some(vec![b' '; 1024 * 1024])).await;
    assert_eq!(huge.status, 413, "{:?}", huge.body);
    assert!(huge.error("body").unwrap().contains("too large"));

    let login_blank = api.login("", "").await;
    assert_eq!((login_blank.status, login_blank.error("email")), (422, Some("can't be blank")));
    assert_eq!(login_blank.error("password"), Some("can't be blank"));

    let nowhere = api.get("/api/nowhere").await;
    assert_eq!((nowhere.status, nowhere.error("route")), (404, Some("not found")));

    // Nothing above created a user.
    assert_eq!(api.login("x@y.z", PASSWORD).await.status, 401);
    mesh.shutdown().await;
}
