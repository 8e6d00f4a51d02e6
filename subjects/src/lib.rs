//! SoulChat's subject contracts: the single source of truth for what travels over NATS.
//!
//! Every side imports this crate: the gateway to call workers, the workers to register their
//! endpoints and to call each other. A subject, stream or bucket name is written here once and
//! nowhere else; the `.proto` files under `proto/` define the payloads (package
//! `soulchat.<domain>.v1`), compiled by prost with proto3 JSON through pbjson.
//!
//! Versioning: a breaking change to a message makes a `v2` operation beside the `v1` one.

pub mod audit;
pub mod auth;
pub mod broker;
pub mod catalog;
pub mod client;
pub mod connect;
pub mod error;
pub mod headers;
pub mod metrics;
pub mod operation;
pub mod paging;
pub mod proto;
pub mod streams;
pub mod time;
pub mod trace;
pub mod wire;

pub mod chat;
pub mod notification;
pub mod profile;
pub mod user;

pub use client::{CallContext, CallError, Caller};
pub use error::{ErrorCode, ServiceError};
pub use operation::{Consumer, Event, Operation, ServiceDef};

/// Every worker of the mesh, in the order `soulchat up` starts them.
pub const SERVICES: [ServiceDef; 4] = [user::SERVICE, profile::SERVICE, chat::SERVICE, notification::SERVICE];
pub use wire::Format;
