//! Profiles and the follow graph through the gateway: the RealWorld shapes, bio and image on
//! the account, lists and search, and the rename and deletion sagas as a client sees them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use soulchat_testkit::{Api, Backend, Mesh, each_backend};

use crate::{PASSWORD, token};

each_backend!(
    profiles_and_follows,
    bio_and_image_live_on_the_profile,
    rename_moves_the_profile_at_once,
    deleting_an_account_removes_profile_and_edges,
    lists_page_every_follower_once
);

async fn profiles_and_follows(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let alice = token(&api.register("alice", PASSWORD).await);
    api.register("Bob", PASSWORD).await;

    let anonymous = api.get("/api/profiles/bob").await;
    assert_eq!(anonymous.status, 200, "{:?}", anonymous.body);
    assert_eq!(
        anonymous.body["profile"],
        json!({"username": "Bob", "bio": null, "image": null, "following": false, "followers_count": 0, "following_count": 0, "blocked": false})
    );

    // A body is ignored; following twice is the same as once.
    for _ in 0..2 {
        let followed = api.post("/api/profiles/Bob/follow", Some(&alice), json!({"user": {"email": "x"}})).await;
        assert_eq!(followed.status, 200, "{:?}", followed.body);
        assert_eq!(followed.body["profile"]["following"], true);
        assert_eq!(followed.body["profile"]["followers_count"], 1);
    }
    assert_eq!(api.get_as("/api/profiles/bob", &alice).await.body["profile"]["following"], true);
    assert_eq!(
        api.get("/api/profiles/bob").await.body["profile"]["following"],
        false,
        "anonymous viewers follow nobody"
    );
    assert_eq!(api.get("/api/profiles/alice").await.body["profile"]["following_count"], 1);

    let own = api.post("/api/profiles/alice/follow", Some(&alice), json!({})).await;
    assert_eq!(own.status, 422, "{:?}", own.body);
    let unknown = api.post("/api/profiles/nobody/follow", Some(&alice), json!({})).await;
    assert_eq!((unknown.status, unknown.error("profile")), (404, Some("not found")));
    let get_unknown = api.get("/api/profiles/nobody").await;
    assert_eq!((get_unknown.status, get_unknown.error("profile")), (404, Some("not found")));
    // Without a token the answer is 401 before anything else, even for an unknown name.
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let r = api.send(method, "/api/profiles/nobody/follow", None, None).await;
        assert_eq!((r.status, r.error("token")), (401, Some("is missing")));
    }

    for _ in 0..2 {
        let unfollowed = api.delete_as("/api/profiles/bob/follow", &alice).await;
        assert_eq!(unfollowed.status, 200, "{:?}", unfollowed.body);
        assert_eq!(unfollowed.body["profile"]["following"], false);
        assert_eq!(unfollowed.body["profile"]["followers_count"], 0);
    }
    assert_eq!(api.get_as("/api/profiles/bob", &alice).await.body["profile"]["following"], false);
    mesh.shutdown().await;
}

async fn bio_and_image_live_on_the_profile(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let t = token(&api.register("carla", PASSWORD).await);

    let updated = api
        .put("/api/user", &t, json!({"user": {"bio": "I like to skate", "image": "https://img.example/carla.png"}}))
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["user"]["bio"], "I like to skate");
    assert_eq!(api.get_as("/api/user", &t).await.body["user"]["image"], "https://img.example/carla.png");
    assert_eq!(api.login("carla@example.com", PASSWORD).await.body["user"]["bio"], "I like to skate");
    let profile = api.get("/api/profiles/carla").await;
    assert_eq!(profile.body["profile"]["bio"], "I like to skate");

    let bad = api.put("/api/user", &t, json!({"user": {"image": "javascript:alert(1)"}})).await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    assert!(bad.error("image").is_some());
    assert_eq!(
        api.get("/api/profiles/carla").await.body["profile"]["image"],
        "https://img.example/carla.png",
        "a refused update changes nothing"
    );

    // An empty string is stored as null.
    let cleared = api.put("/api/user", &t, json!({"user": {"bio": "", "image": null}})).await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.body);
    assert!(cleared.body["user"]["bio"].is_null() && cleared.body["user"]["image"].is_null());
    assert!(api.get("/api/profiles/carla").await.body["profile"]["bio"].is_null());
    mesh.shutdown().await;
}

async fn rename_moves_the_profile_at_once(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let fan = token(&api.register("fan", PASSWORD).await);
    let t = token(&api.register("oldname", PASSWORD).await);
    api.post("/api/profiles/oldname/follow", Some(&fan), json!({})).await;

    let renamed = api.put("/api/user", &t, json!({"user": {"username": "NewName", "bio": "renamed"}})).await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    // No waiting: the profile's copy changed before PUT answered.
    let moved = api.get_as("/api/profiles/newname", &fan).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["profile"]["username"], "NewName");
    assert_eq!(moved.body["profile"]["bio"], "renamed");
    assert_eq!(moved.body["profile"]["following"], true, "followers follow the person, not the name");
    assert_eq!(api.get("/api/profiles/oldname").await.status, 404);
    // The old name is free for someone else.
    let taken = api
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "oldname", "email": "other@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(taken.status, 201, "{:?}", taken.body);
    assert_eq!(api.get("/api/profiles/oldname").await.body["profile"]["followers_count"], 0);
    mesh.shutdown().await;
}

async fn deleting_an_account_removes_profile_and_edges(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    let alice = token(&api.register("alice", PASSWORD).await);
    let bob = token(&api.register("bob", PASSWORD).await);
    api.post("/api/profiles/bob/follow", Some(&alice), json!({})).await;
    api.post("/api/profiles/alice/follow", Some(&bob), json!({})).await;

    assert_eq!(api.delete_as("/api/user", &bob).await.status, 204);
    // The profile worker follows `user.deleted`: eventually, and soon.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = api.get("/api/profiles/bob").await.status == 404;
        let alice_profile = api.get("/api/profiles/alice").await.body["profile"].clone();
        if gone && alice_profile["followers_count"] == 0 && alice_profile["following_count"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "bob's profile and edges were not removed: {alice_profile}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let following = api.get("/api/profiles/alice/following").await;
    assert_eq!(following.body["profiles"], json!([]));
    mesh.shutdown().await;
}

async fn lists_page_every_follower_once(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    let api = &mesh.api;
    api.register("star", PASSWORD).await;
    let mut fans = Vec::new();
    for i in 0..24 {
        let name = format!("fan{i:02}");
        let t = token(&api.register(&name, PASSWORD).await);
        fans.push((name, t));
    }
    let (early, late) = fans.split_at(12);
    for (_, t) in early {
        assert_eq!(api.post("/api/profiles/star/follow", Some(t), json!({})).await.status, 200);
    }

    // Page through the followers while the other half follows meanwhile.
    let late: Vec<(String, String)> = late.to_vec();
    let follower_api = api.clone();
    let following = tokio::spawn(async move {
        for (_, t) in &late {
            assert_eq!(follower_api.post("/api/profiles/star/follow", Some(t), json!({})).await.status, 200);
        }
    });
    let listed = page_all(api, "/api/profiles/star/followers", 5).await;
    following.await.unwrap();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a follower was listed twice: {listed:?}");
    for (name, _) in early {
        assert!(unique.contains(name), "{name}, who followed before the listing, is missing");
    }
    // Once quiet, the full list holds everyone exactly once, oldest follow first.
    let all = page_all(api, "/api/profiles/star/followers", 7).await;
    let expected: Vec<String> = fans.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(all.len(), 24);
    assert_eq!(all.iter().collect::<BTreeSet<_>>(), expected.iter().collect::<BTreeSet<_>>());
    assert_eq!(api.get("/api/profiles/star").await.body["profile"]["followers_count"], 24);

    let following = api.get("/api/profiles/fan00/following").await;
    assert_eq!(following.body["profiles"][0]["username"], "star");
    assert!(following.body["next_cursor"].is_null());

    // Search by prefix, paged, case-insensitively.
    let found = page_all(api, "/api/profiles?q=FAN1", 3).await;
    assert_eq!(found, (10..20).map(|i| format!("fan{i}")).collect::<Vec<_>>());
    let limit = api.get("/api/profiles/star/followers?limit=0").await;
    assert_eq!((limit.status, limit.error("limit").is_some()), (422, true));
    let limit = api.get("/api/profiles/star/followers?limit=many").await;
    assert_eq!(limit.status, 422);
    mesh.shutdown().await;
}

/// Every username of a paged list, following `next_cursor` to the end.
async fn page_all(api: &Api, path: &str, limit: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    let separator = if path.contains('?') { '&' } else { '?' };
    for _ in 0..100 {
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&url).await;
        assert_eq!(page.status, 200, "{url}: {:?}", page.body);
        let profiles = page.body["profiles"].as_array().expect("a profiles array");
        assert!(profiles.len() <= limit as usize);
        names.extend(profiles.iter().map(|p| p["username"].as_str().unwrap().to_owned()));
        match &page.body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return names,
            other => panic!("next_cursor is {other}"),
        }
    }
    panic!("{path} did not end within 100 pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_events_leave_through_the_outbox() {
    use soulchat_subjects::profile::messages::{FollowEvent, ProfileEvent};

    let mesh = Mesh::start(Backend::Sqlite).await;
    let api = &mesh.api;
    let ann = token(&api.register("ann", PASSWORD).await);
    api.register("ben", PASSWORD).await;
    api.post("/api/profiles/ben/follow", Some(&ann), json!({})).await;
    api.post("/api/profiles/ben/follow", Some(&ann), json!({})).await; // no change, no event
    api.delete_as("/api/profiles/ben/follow", &ann).await;
    api.put("/api/user", &ann, json!({"user": {"bio": "events"}})).await;

    let mut seen = Vec::new();
    for (subject, payload, id) in mesh.events("soulchat.events.profile.>", 3).await {
        assert!(id.starts_with("profile:"), "{id}");
        seen.push(match subject.as_str() {
            "soulchat.events.profile.updated" => {
                let e: ProfileEvent = prost::Message::decode(payload).unwrap();
                format!("updated {}", e.profile.unwrap().bio.unwrap_or_default())
            }
            subject => {
                let e: FollowEvent = prost::Message::decode(payload).unwrap();
                format!("{} {}>{}", subject.rsplit('.').next().unwrap(), e.follower_username, e.followee_username)
            }
        });
    }
    assert_eq!(seen, vec!["followed ann>ben", "unfollowed ann>ben", "updated events"]);
    mesh.shutdown().await;
}
