//! What every SoulChat worker shares, so a domain crate holds only its handlers and its store.
//!
//! # Layout
//!
//! - [`service`]: the one way a worker starts and stops. A domain implements [`Service`] (its
//!   contract, migrations, state, consumers, handlers) and [`service::run`] does the rest, in
//!   order.
//! - [`worker`]: registering with the NATS service API and answering requests in either wire
//!   format, one tracing span per request (subject, request id, caller).
//! - [`error`]: what handlers fail with; every source converts by `From`, so handlers use `?`.
//! - [`database`]: the database and its migrations, where the write rule is a type: reads through
//!   [`Reads`], writes only inside a [`WriteTx`].
//! - [`outbox`] and [`relay`]: domain events recorded in the writing transaction and published
//!   after its commit, by one relay loop for every outbox table.
//! - [`consumer`]: durable event consumers with exactly-once effects; [`processed`]: forgetting
//!   the ids they recorded once no redelivery can bring them back; [`pruner`]: the one way a
//!   service deletes what it no longer needs, in the background.
//! - [`dedicated`]: serial hot loops on threads of their own.
//! - [`nats_server`]: finding or starting the pinned nats-server; [`cluster`]: a NATS cluster and
//!   every role as its own process on one machine (`soulchat cluster`, the fault tests).
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`) and the process's
//!   metrics recorder.
//! - [`telemetry`]: log lines and exported traces, one way for every role.

pub mod admin;
pub mod cluster;
pub mod consumer;
pub mod database;
pub mod dedicated;
pub mod error;
pub mod nats_server;
pub mod outbox;
pub mod processed;
pub mod pruner;
pub mod relay;
pub mod service;
pub mod telemetry;
pub mod worker;

pub use database::{Backend, Database, Migrations, ReadConn, Reads, WriteTx, push_in_list};
pub use error::{Error, Result};
pub use outbox::Outbox;
pub use service::{Common, Context, Service};
pub use worker::{Endpoints, RequestContext};
