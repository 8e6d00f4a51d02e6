//! How a contract is declared: a service, its request/reply operations and its events.
//!
//! Each operation is a unit type implementing [`Operation`]: its subject, request and response
//! types are fixed together, so a caller cannot send the wrong message to a subject and a worker
//! registers exactly the endpoints the contract names.

use crate::wire::Payload;

/// A worker's identity in the NATS service API (`$SRV.INFO`, `nats micro ls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDef {
    /// `soulchat-<domain>`: the service name and its queue group.
    pub name: &'static str,
    /// `soulchat.<domain>.v1`: every operation's subject starts with it.
    pub subject_prefix: &'static str,
    pub description: &'static str,
}

/// One request/reply operation of a service.
pub trait Operation: Send + Sync + 'static {
    const SERVICE: ServiceDef;
    /// The endpoint name, the last subject token.
    const NAME: &'static str;
    /// `soulchat.<domain>.v1.<name>`.
    const SUBJECT: &'static str;
    type Request: Payload;
    type Response: Payload;
}

/// One kind of event published to JetStream.
pub trait Event: Send + Sync + 'static {
    /// The subject (or, for a family of subjects, the filter) it is published on.
    const SUBJECT: &'static str;
    /// The stream that keeps it.
    const STREAM: &'static str;
    type Payload: Payload;
}

/// Declares a service and its operations:
///
/// ```ignore
/// service! {
///     SERVICE = "soulchat-user", "soulchat.user.v1", "Accounts and sessions";
///     /// Doc.
///     Register = "register": RegisterRequest => AuthReply;
/// }
/// ```
#[macro_export]
macro_rules! service {
    (
        SERVICE = $name:literal, $prefix:literal, $description:literal;
        $( $(#[$doc:meta])* $op:ident = $endpoint:literal : $req:ty => $resp:ty; )*
    ) => {
        pub const SERVICE: $crate::ServiceDef = $crate::ServiceDef {
            name: $name,
            subject_prefix: $prefix,
            description: $description,
        };

        /// Answers with the worker's name and version; every worker has it.
        pub struct Health;
        impl $crate::Operation for Health {
            const SERVICE: $crate::ServiceDef = SERVICE;
            const NAME: &'static str = "health";
            const SUBJECT: &'static str = concat!($prefix, ".health");
            type Request = $crate::proto::common::v1::HealthRequest;
            type Response = $crate::proto::common::v1::HealthReply;
        }

        $(
            $(#[$doc])*
            pub struct $op;
            impl $crate::Operation for $op {
                const SERVICE: $crate::ServiceDef = SERVICE;
                const NAME: &'static str = $endpoint;
                const SUBJECT: &'static str = concat!($prefix, ".", $endpoint);
                type Request = $req;
                type Response = $resp;
            }
        )*
    };
}

/// Declares events: `Created = "soulchat.events.user.created": UserEvent;`, on `SOULCHAT_EVENTS`
/// unless a first line `STREAM = <const>;` names another stream.
#[macro_export]
macro_rules! events {
    ( STREAM = $stream:path; $( $(#[$doc:meta])* $event:ident = $subject:literal : $payload:ty; )* ) => {
        $(
            $(#[$doc])*
            pub struct $event;
            impl $crate::Event for $event {
                const SUBJECT: &'static str = $subject;
                const STREAM: &'static str = $stream;
                type Payload = $payload;
            }
        )*
    };
    ( $( $(#[$doc:meta])* $event:ident = $subject:literal : $payload:ty; )* ) => {
        $crate::events! { STREAM = $crate::streams::EVENTS_STREAM; $( $(#[$doc])* $event = $subject : $payload; )* }
    };
}
