//! The gateway serves a built web client at `/` (types, caching, content-security policy, the
//! page for client-side paths, 404 for a missing asset), keeps the API's JSON 404s, and lets
//! the page it serves open a WebSocket from its own origin.

use soulchat_testkit::{Backend, Mesh, Options, Socket};

use crate::PASSWORD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_web_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<!doctype html><title>SoulChat</title>").unwrap();
    std::fs::write(dir.path().join("assets/index-0a1b2c.js"), "console.log('hi')").unwrap();
    let mut options = Options::new(Backend::Sqlite);
    options.web_dir = Some(dir.path().to_owned());
    let mesh = Mesh::start_with(options).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", mesh.api.base)).send();

    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_owned();
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("default-src 'self'") && policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert!(page.text().await.unwrap().contains("<title>SoulChat</title>"));

    let asset = get("/assets/index-0a1b2c.js").await.unwrap();
    assert_eq!(asset.status(), 200);
    assert!(header(&asset, "content-type").contains("javascript"));
    assert_eq!(header(&asset, "cache-control"), "public, max-age=31536000, immutable");

    assert_eq!(get("/assets/gone-123.js").await.unwrap().status(), 404, "a missing asset is not the page");
    let client_path = get("/conversations/42").await.unwrap();
    assert_eq!(client_path.status(), 200);
    assert!(client_path.text().await.unwrap().contains("SoulChat"), "client-side paths get the page");

    let unknown_api = mesh.api.get("/api/nothing-here").await;
    assert_eq!((unknown_api.status, unknown_api.error("route")), (404, Some("not found")));

    // The page's own origin may open the WebSocket; another origin still may not.
    let user = mesh.api.register("wendy", PASSWORD).await;
    let token = user["token"].as_str().unwrap();
    let own = mesh.api.base.clone();
    assert!(Socket::try_connect(&mesh.api.base, Some(token), None, Some(&own)).await.is_ok());
    let foreign = Socket::try_connect(&mesh.api.base, Some(token), None, Some("https://evil.example")).await;
    assert_eq!(foreign.err(), Some(403));
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_web_client_the_root_is_a_json_404() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let root = mesh.api.get("/").await;
    assert_eq!((root.status, root.error("route")), (404, Some("not found")));
    mesh.shutdown().await;
}
