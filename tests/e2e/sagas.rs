//! The registration saga under failure: a profile worker that is down, crashes mid-flight or
//! whose database fails, and a user worker that crashes mid-flight. Whatever happens, once the
//! workers are back every saga ends finished or compensated, and users and profiles agree.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use soulchat_testkit::{Backend, Mesh, Role, each_backend};
use sqlx::Executor;

use crate::PASSWORD;

each_backend!(
    profile_worker_down_compensates,
    profile_database_failure_compensates,
    crashes_mid_registration_are_recovered,
    welcome_is_retried_and_never_fails_registration
);

async fn register(api: &soulchat_testkit::Api, name: &str) -> soulchat_testkit::Response {
    api.post(
        "/api/users",
        None,
        json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}}),
    )
    .await
}

/// Waits until the saga log has no open saga, then checks that every active account has a
/// profile and every profile an account.
async fn assert_settled(mesh: &Mesh) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = mesh.strings(Role::User, "SELECT id FROM sagas WHERE state IN ('running', 'compensating')").await;
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sagas still open after 60 s: {open:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let users: BTreeSet<String> = mesh.strings(Role::User, "SELECT id FROM users").await.into_iter().collect();
    let pending = mesh.strings(Role::User, "SELECT id FROM users WHERE pending <> 0").await;
    let profiles: BTreeSet<String> =
        mesh.strings(Role::Profile, "SELECT user_id FROM profiles").await.into_iter().collect();
    assert!(pending.is_empty(), "accounts left pending: {pending:?}");
    assert_eq!(users, profiles, "users and profiles disagree");
}

async fn profile_worker_down_compensates(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    mesh.stop_role(Role::Profile).await;
    let refused = register(&mesh.api, "early").await;
    assert_eq!((refused.status, refused.error("service")), (503, Some("unavailable")), "{:?}", refused.body);
    assert_eq!(mesh.api.login("early@example.com", PASSWORD).await.status, 401, "the compensated account is gone");

    mesh.start_role(Role::Profile).await;
    assert_settled(&mesh).await;
    // The name was released by the compensation.
    let again = register(&mesh.api, "early").await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(mesh.api.get("/api/profiles/early").await.status, 200);
    mesh.shutdown().await;
}

async fn profile_database_failure_compensates(backend: Backend) {
    let mesh = Mesh::start(backend).await;
    mesh.api.register("before", PASSWORD).await;
    let mut db = mesh.database(Role::Profile).await;
    db.execute("ALTER TABLE profiles RENAME TO profiles_broken").await.unwrap();

    let refused = register(&mesh.api, "during").await;
    assert_eq!((refused.status, refused.error("service")), (503, Some("unavailable")), "{:?}", refused.body);
    assert_eq!(mesh.api.login("during@example.com", PASSWORD).await.status, 401);

    db.execute("ALTER TABLE profiles_broken RENAME TO profiles").await.unwrap();
    assert_settled(&mesh).await;
    assert_eq!(register(&mesh.api, "during").await.status, 201);
    assert_settled(&mesh).await;
    mesh.shutdown().await;
}

async fn crashes_mid_registration_are_recovered(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    for (round, victim) in [Role::Profile, Role::User].into_iter().enumerate() {
        let api = mesh.api.clone();
        let registrations = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let pending: Vec<_> = (0..12)
                .map(|i| {
                    let api = api.clone();
                    tokio::spawn(async move {
                        let name = format!("r{round}u{i}");
                        (name.clone(), register(&api, &name).await.status)
                    })
                })
                .collect();
            for p in pending {
                outcomes.push(p.await.unwrap());
            }
            outcomes
        });
        // Registrations hash for tens of milliseconds each: kill the worker while they run.
        tokio::time::sleep(Duration::from_millis(120)).await;
        mesh.kill_role(victim);
        tokio::time::sleep(Duration::from_millis(300)).await;
        mesh.start_role(victim).await;
        let outcomes = registrations.await.unwrap();
        assert!(outcomes.iter().all(|(_, s)| [201, 500, 503].contains(s)), "{outcomes:?}");

        assert_settled(&mesh).await;
        // Whoever got 201 can log in and has a profile; whoever did not, either finished by
        // recovery (can log in) or was compensated (can register again).
        for (name, status) in outcomes {
            let login = mesh.api.login(&format!("{name}@example.com"), PASSWORD).await;
            if status == 201 {
                assert_eq!(login.status, 200, "{name} registered but cannot log in");
            }
            match login.status {
                200 => assert_eq!(mesh.api.get(&format!("/api/profiles/{name}")).await.status, 200),
                401 => assert_eq!(register(&mesh.api, &name).await.status, 201, "{name} is neither usable nor free"),
                other => panic!("{name}: login answered {other}"),
            }
        }
    }
    assert_settled(&mesh).await;
    mesh.shutdown().await;
}

async fn welcome_is_retried_and_never_fails_registration(backend: Backend) {
    let mut mesh = Mesh::start(backend).await;
    mesh.stop_role(Role::Notification).await;
    let registered = register(&mesh.api, "welcomed").await;
    assert_eq!(registered.status, 201, "a notification failure must not fail registration: {:?}", registered.body);
    assert_eq!(mesh.api.get("/api/profiles/welcomed").await.status, 200);
    let open = mesh.strings(Role::User, "SELECT step FROM sagas WHERE state = 'running'").await;
    assert_eq!(open, vec!["welcome".to_owned()], "the saga waits at its welcome step");

    mesh.start_role(Role::Notification).await;
    assert_settled(&mesh).await;
    let welcomes = mesh.strings(Role::Notification, "SELECT kind FROM notifications").await;
    assert_eq!(welcomes, vec!["welcome".to_owned()], "exactly one welcome once recovered");
    mesh.shutdown().await;
}
