//! End-to-end tests: real HTTP through the gateway, real NATS (a private nats-server per test),
//! real databases (SQLite, and MariaDB when SOULCHAT_TEST_MYSQL_URL is set).

mod abuse;
mod account_flows;
mod accounts;
mod attachments;
mod audit;
mod blocking;
mod broker;
mod cache;
mod chat;
mod delivery;
mod edge;
mod faults;
mod input;
mod mentions;
mod mesh;
mod metrics;
mod moderation;
mod notifications;
mod pins;
mod pipelining;
mod profiles;
mod reactions;
mod replicas;
mod retention;
mod sagas;
mod search;
mod sessions;
mod threads;
mod web;

use std::time::Duration;

use serde_json::Value;
use soulchat_testkit::Mesh;

pub const PASSWORD: &str = "correct horse battery";

pub fn token(user: &Value) -> String {
    user["token"].as_str().expect("a token").to_owned()
}

/// The user's notifications, once `enough` holds of them (polled for 20 s).
pub async fn notifications_until(mesh: &Mesh, token: &str, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = mesh.api.get_as("/api/notifications", token).await;
        let list = r.body["notifications"].as_array().cloned().unwrap_or_default();
        if enough(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "not there yet: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user's notifications of `kind`, once there are `count` of them.
pub async fn notifications_of(mesh: &Mesh, token: &str, kind: &str, count: usize) -> Vec<Value> {
    let of_kind = |list: &[Value]| list.iter().filter(|n| n["kind"] == kind).cloned().collect::<Vec<_>>();
    of_kind(&notifications_until(mesh, token, |list| of_kind(list).len() >= count).await)
}
