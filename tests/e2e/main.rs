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

use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery";

pub fn token(user: &Value) -> String {
    user["token"].as_str().expect("a token").to_owned()
}
