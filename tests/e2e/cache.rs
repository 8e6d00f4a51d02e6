//! The Redis profile cache, against a real Redis (SOULCHAT_TEST_REDIS_URL): reads are served
//! from it and counted, and after an update returns no reader ever sees the older profile, also
//! while reads race the updates. Names carry a random suffix: the Redis is shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use soulchat_testkit::{Backend, Mesh, Options};

use crate::{PASSWORD, token};

async fn mesh_with_redis(backend: Backend) -> Option<Mesh> {
    let Ok(url) = std::env::var("SOULCHAT_TEST_REDIS_URL") else {
        eprintln!("skipped: SOULCHAT_TEST_REDIS_URL is not set");
        return None;
    };
    let mut options = Options::new(backend);
    options.redis_url = Some(url);
    Some(Mesh::start_with(options).await)
}

fn unique(name: &str) -> String {
    format!("{name}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// The profile worker's cache counters from `$SRV.STATS`.
async fn cache_stats(mesh: &Mesh) -> (u64, u64) {
    let client = mesh.client().await;
    let reply = client.request("$SRV.STATS.soulchat-profile", "".into()).await.unwrap();
    let stats: Value = serde_json::from_slice(&reply.payload).unwrap();
    let data = &stats["endpoints"][0]["data"];
    assert_eq!(data["cache"], "redis", "{stats}");
    (data["cache_hits"].as_u64().unwrap(), data["cache_misses"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_cached_and_counted() {
    let Some(mesh) = mesh_with_redis(Backend::Sqlite).await else { return };
    let name = unique("cached");
    let t = token(&mesh.api.register(&name, PASSWORD).await);
    let (hits_before, _) = cache_stats(&mesh).await;
    for _ in 0..3 {
        assert_eq!(mesh.api.get(&format!("/api/profiles/{name}")).await.status, 200);
    }
    let (hits, _) = cache_stats(&mesh).await;
    assert!(hits >= hits_before + 3, "registration fills the cache, so three reads hit: {hits_before} -> {hits}");

    // A rename leaves the old name answering 404 at once, cache or not.
    let renamed = unique("renamed");
    let r = mesh.api.put("/api/user", &t, json!({"user": {"username": renamed, "bio": "moved"}})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(mesh.api.get(&format!("/api/profiles/{name}")).await.status, 404);
    assert_eq!(mesh.api.get(&format!("/api/profiles/{renamed}")).await.body["profile"]["bio"], "moved");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reader_sees_a_profile_older_than_the_last_answered_update() {
    let Some(mesh) = mesh_with_redis(Backend::Sqlite).await else { return };
    let name = unique("racer");
    let t = token(&mesh.api.register(&name, PASSWORD).await);
    let viewer = token(&mesh.api.register(&unique("viewer"), PASSWORD).await);
    // The last bio version whose PUT has returned.
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..4)
        .map(|reader| {
            let (api, name, answered, done, viewer) =
                (mesh.api.clone(), name.clone(), answered.clone(), done.clone(), viewer.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while done.load(Ordering::SeqCst) == 0 {
                    let floor = answered.load(Ordering::SeqCst);
                    // Half the readers are signed in: `following` is computed, never cached.
                    let r = if reader % 2 == 0 {
                        api.get(&format!("/api/profiles/{name}")).await
                    } else {
                        api.get_as(&format!("/api/profiles/{name}"), &viewer).await
                    };
                    assert_eq!(r.status, 200, "{:?}", r.body);
                    let seen = r.body["profile"]["bio"]
                        .as_str()
                        .map_or(0, |b| b.trim_start_matches('v').parse::<u64>().unwrap());
                    assert!(seen >= floor, "a reader saw bio v{seen} after the update to v{floor} had returned");
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for version in 1..=30u64 {
        let r = mesh.api.put("/api/user", &t, json!({"user": {"bio": format!("v{version}")}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        answered.store(version, Ordering::SeqCst);
    }
    done.store(1, Ordering::SeqCst);
    let reads: u64 =
        futures::stream::iter(readers).then(|r| async { r.await.unwrap() }).fold(0, |a, b| async move { a + b }).await;
    assert!(reads > 30, "the readers raced the updates ({reads} reads)");
    assert_eq!(mesh.api.get(&format!("/api/profiles/{name}")).await.body["profile"]["bio"], "v30");
    tokio::time::sleep(Duration::from_millis(10)).await;
    mesh.shutdown().await;
}
