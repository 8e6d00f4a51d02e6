//! Registering, logging in and managing an account, end to end.

use serde_json::json;
use soulchat_testkit::{Backend, Mesh, each_backend};

use crate::{PASSWORD, token};

each_backend!(account_lifecycle, names_are_unique_in_any_case, deleted_account_is_gone);

async fn account_lifecycle(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;

    let registered = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "Alice", "email": "Alice@Example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let user = &registered.body["user"];
    assert_eq!(user["username"], "Alice");
    assert_eq!(user["email"], "Alice@Example.com");
    assert!(user["bio"].is_null() && user["image"].is_null(), "a new user has null bio and image: {user}");
    assert!(user["refresh_token"].as_str().is_some_and(|t| t.len() >= 40));

    // Log in with the email in another case.
    let login = api.login("alice@example.COM", PASSWORD).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let t = token(&login.body["user"]);

    let me = api.get_as("/api/user", &t).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["user"]["username"], "Alice");
    assert_eq!(me.body["user"]["token"], t.as_str(), "the current token is echoed back");

    // Change the email: a new token carries it; the old one keeps working until it expires.
    let updated = api.put("/api/user", &t, json!({"user": {"email": "alice@new.example"}})).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["user"]["email"], "alice@new.example");
    let t2 = token(&updated.body["user"]);
    assert_ne!(t2, t);
    assert_eq!(api.get_as("/api/user", &t).await.status, 200);
    assert_eq!(api.get_as("/api/user", &t2).await.body["user"]["email"], "alice@new.example");
    assert_eq!(api.login("Alice@Example.com", PASSWORD).await.status, 401, "the old email no longer logs in");
    assert_eq!(api.login("alice@new.example", PASSWORD).await.status, 200);

    // Refresh rotates the refresh token and issues a working access token.
    let refresh = login.body["user"]["refresh_token"].as_str().unwrap();
    let refreshed = api.post("/api/users/refresh", None, json!({"refresh_token": refresh})).await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    let t3 = token(&refreshed.body["user"]);
    assert_ne!(refreshed.body["user"]["refresh_token"], refresh);
    assert_eq!(api.get_as("/api/user", &t3).await.status, 200);

    // Logout revokes the token, its family, and every token issued from that family.
    let out = api.post("/api/users/logout", Some(&t3), json!({})).await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    for revoked in [&t3, &t, &t2] {
        let r = api.get_as("/api/user", revoked).await;
        assert_eq!(r.status, 401, "a token of the logged-out family still works");
        assert_eq!(r.error("token"), Some("has been revoked"));
    }
    let again =
        api.post("/api/users/refresh", None, json!({"refresh_token": refreshed.body["user"]["refresh_token"]})).await;
    assert_eq!((again.status, again.error("refresh_token")), (401, Some("revoked")));
    mesh.shutdown().await;
}

async fn names_are_unique_in_any_case(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    api.register("Bob", PASSWORD).await;

    let same_name = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "BOB", "email": "other@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!((same_name.status, same_name.error("username")), (409, Some("has already been taken")));

    let same_email = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "robert", "email": "BOB@EXAMPLE.COM", "password": PASSWORD}}),
        )
        .await;
    assert_eq!((same_email.status, same_email.error("email")), (409, Some("has already been taken")));

    // Renaming onto a taken name is refused the same way; renaming to a new case of one's own is not.
    let carol = api.register("carol", PASSWORD).await;
    let t = token(&carol);
    let clash = api.put("/api/user", &t, json!({"user": {"username": "bOb"}})).await;
    assert_eq!((clash.status, clash.error("username")), (409, Some("has already been taken")));
    let recase = api.put("/api/user", &t, json!({"user": {"username": "Carol"}})).await;
    assert_eq!(recase.status, 200, "{:?}", recase.body);
    assert_eq!(recase.body["user"]["username"], "Carol");
    mesh.shutdown().await;
}

async fn deleted_account_is_gone(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let dave = api.register("dave", PASSWORD).await;
    let t = token(&dave);
    let r = api.delete_as("/api/user", &t).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert!(r.body.is_null(), "204 has no body");
    assert_eq!(api.get_as("/api/user", &t).await.status, 401, "the deleted account's token is revoked");
    assert_eq!(api.login("dave@example.com", PASSWORD).await.status, 401);
    // The name is free again.
    api.register("dave", PASSWORD).await;
    mesh.shutdown().await;
}
