//! What every SoulChat worker shares, so a domain crate holds only its handlers and its store:
//! registering with the NATS service API and answering requests in either wire format
//! ([`worker`]), the database with its migrations ([`database`]), the transactional outbox that
//! publishes domain events ([`outbox`]), event consumers ([`consumer`]), serial hot loops on
//! threads of their own ([`dedicated`]), and finding or starting a pinned nats-server
//! ([`nats_server`]).

pub mod consumer;
pub mod database;
pub mod dedicated;
pub mod nats_server;
pub mod outbox;
pub mod worker;

pub use database::{Backend, Database, Migrations};
pub use outbox::Outbox;
pub use worker::{RequestContext, Worker, WorkerBuilder};

/// Milliseconds since the Unix epoch: how every SoulChat table stores time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
