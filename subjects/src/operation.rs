//! How a contract is declared: a service, its request/reply operations (per version), its events
//! and the durable consumers that follow them.
//!
//! Each operation is a unit type implementing [`Operation`]: its subject, request and response
//! types are fixed together, so a caller cannot send the wrong message to a subject and a worker
//! registers exactly the endpoints the contract names. The macros also list what they declare
//! ([`OperationInfo`], [`EventInfo`], [`ConsumerInfo`]), which is how the README's tables are
//! checked against the contract.

use std::marker::PhantomData;

use crate::broker::Identity;
use crate::wire::Payload;

/// A worker's identity in the NATS service API (`$SRV.INFO`, `nats micro ls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDef {
    /// `soulchat-<domain>`: the service name and its queue group.
    pub name: &'static str,
    /// `user`, `profile`, ...: the subject token after `soulchat.`.
    pub domain: &'static str,
    pub description: &'static str,
    /// `soulchat.<domain>.v1.health`, which every worker answers.
    pub health: &'static str,
}

/// One request/reply operation of a service.
pub trait Operation: Send + Sync + 'static {
    const SERVICE: ServiceDef;
    /// `v1`, `v2`, ...: a breaking change makes a new version beside the old one.
    const VERSION: &'static str;
    /// The endpoint name in the service API, unique within the service: the operation name for
    /// `v1`, `<name>_<version>` beyond.
    const ENDPOINT: &'static str;
    /// `soulchat.<domain>.<version>.<name>`.
    const SUBJECT: &'static str;
    /// Who may call it: the broker lets no one else publish to [`Operation::SUBJECT`].
    const CALLERS: &'static [Identity];
    type Request: Payload;
    type Response: Payload;
}

/// What the contract says of one operation, for documentation and checks.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo {
    pub subject: &'static str,
    pub endpoint: &'static str,
    pub request: &'static str,
    pub response: &'static str,
    pub doc: &'static str,
    pub callers: &'static [Identity],
}

/// One kind of event published to JetStream.
pub trait Event: Send + Sync + 'static {
    /// The subject (or, for a family of subjects, the filter) it is published on.
    const SUBJECT: &'static str;
    /// The stream that keeps it.
    const STREAM: &'static str;
    type Payload: Payload;
}

/// What the contract says of one kind of event.
#[derive(Debug, Clone, Copy)]
pub struct EventInfo {
    pub subject: &'static str,
    pub stream: &'static str,
    pub payload: &'static str,
    pub doc: &'static str,
}

/// A durable JetStream consumer of events `E`: its name is part of the contract, since the
/// server keeps its position under that name across restarts and replicas share it.
pub struct Consumer<E: Event> {
    pub durable: &'static str,
    event: PhantomData<fn() -> E>,
}

impl<E: Event> Consumer<E> {
    pub const fn new(durable: &'static str) -> Self {
        Consumer { durable, event: PhantomData }
    }
}

impl<E: Event> Clone for Consumer<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: Event> Copy for Consumer<E> {}

/// What the contract says of one durable consumer.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerInfo {
    pub durable: &'static str,
    pub subject: &'static str,
    pub stream: &'static str,
}

/// The endpoint name of an operation: its name in `v1`, suffixed by the version beyond.
#[doc(hidden)]
#[macro_export]
macro_rules! __endpoint {
    (v1, $name:literal) => {
        $name
    };
    ($version:ident, $name:literal) => {
        concat!($name, "_", stringify!($version))
    };
}

/// Declares a service and its operations, version by version:
///
/// ```ignore
/// service! {
///     SERVICE = "user", "Accounts and sessions";
///     v1 {
///         /// Doc.
///         Register = "register": RegisterRequest => AuthReply, by [Gateway];
///     }
/// }
/// ```
///
/// `by [...]` names the [`Identity`]s that may call the operation (public operations: the
/// gateway; saga steps: the user worker; look-ups: whoever needs them); the broker's permissions
/// are generated from it ([`crate::broker`]). It defines `SERVICE`, one type per operation, the
/// built-in `Health` (in `v1`, called by the gateway's readiness check) and `OPERATIONS`, the
/// list of all of them.
#[macro_export]
macro_rules! service {
    (
        SERVICE = $domain:literal, $description:literal;
        $( $version:ident {
            $( $(#[doc = $doc:literal])* $op:ident = $endpoint:literal : $req:ty => $resp:ty, by [$($caller:ident),*]; )*
        } )*
    ) => {
        pub const SERVICE: $crate::ServiceDef = $crate::ServiceDef {
            name: concat!("soulchat-", $domain),
            domain: $domain,
            description: $description,
            health: concat!("soulchat.", $domain, ".v1.health"),
        };

        /// Answers with the worker's name and version; every worker has it.
        pub struct Health;
        impl $crate::Operation for Health {
            const SERVICE: $crate::ServiceDef = SERVICE;
            const VERSION: &'static str = "v1";
            const ENDPOINT: &'static str = "health";
            const SUBJECT: &'static str = SERVICE.health;
            const CALLERS: &'static [$crate::broker::Identity] = &[$crate::broker::Identity::Gateway];
            type Request = $crate::proto::common::v1::HealthRequest;
            type Response = $crate::proto::common::v1::HealthReply;
        }

        $( $(
            $(#[doc = $doc])*
            pub struct $op;
            impl $crate::Operation for $op {
                const SERVICE: $crate::ServiceDef = SERVICE;
                const VERSION: &'static str = stringify!($version);
                const ENDPOINT: &'static str = $crate::__endpoint!($version, $endpoint);
                const SUBJECT: &'static str = concat!("soulchat.", $domain, ".", stringify!($version), ".", $endpoint);
                const CALLERS: &'static [$crate::broker::Identity] = &[$($crate::broker::Identity::$caller),*];
                type Request = $req;
                type Response = $resp;
            }
        )* )*

        /// Every operation of the service, `health` last.
        pub const OPERATIONS: &[$crate::operation::OperationInfo] = &[
            $( $( $crate::operation::OperationInfo {
                subject: <$op as $crate::Operation>::SUBJECT,
                endpoint: <$op as $crate::Operation>::ENDPOINT,
                request: stringify!($req),
                response: stringify!($resp),
                doc: concat!($($doc),*),
                callers: <$op as $crate::Operation>::CALLERS,
            }, )* )*
            $crate::operation::OperationInfo {
                subject: SERVICE.health,
                endpoint: "health",
                request: "HealthRequest",
                response: "HealthReply",
                doc: " Answers with the worker's name and version; every worker has it.",
                callers: <Health as $crate::Operation>::CALLERS,
            },
        ];
    };
}

/// Declares events: `Created = "soulchat.events.user.created": UserEvent;`, on `SOULCHAT_EVENTS`
/// unless a first line `STREAM = <const>;` names another stream. Defines `EVENTS`, their list.
#[macro_export]
macro_rules! events {
    ( STREAM = $stream:path; $( $(#[doc = $doc:literal])* $event:ident = $subject:expr => $payload:ty; )* ) => {
        $(
            $(#[doc = $doc])*
            pub struct $event;
            impl $crate::Event for $event {
                const SUBJECT: &'static str = $subject;
                const STREAM: &'static str = $stream;
                type Payload = $payload;
            }
        )*

        /// Every kind of event declared here.
        pub const EVENTS: &[$crate::operation::EventInfo] = &[
            $( $crate::operation::EventInfo {
                subject: $subject,
                stream: $stream,
                payload: stringify!($payload),
                doc: concat!($($doc),*),
            }, )*
        ];
    };
    ( $( $(#[doc = $doc:literal])* $event:ident = $subject:expr => $payload:ty; )* ) => {
        $crate::events! { STREAM = $crate::streams::EVENTS_STREAM; $( $(#[doc = $doc])* $event = $subject => $payload; )* }
    };
}

/// Declares a service's durable consumers: `USER_DELETED: crate::user::Deleted = "profile-user-deleted";`.
/// Defines one [`Consumer`] constant each and `CONSUMERS`, their list.
#[macro_export]
macro_rules! consumers {
    ( $( $(#[doc = $doc:literal])* $name:ident : $event:ty = $durable:literal; )* ) => {
        $(
            $(#[doc = $doc])*
            pub const $name: $crate::operation::Consumer<$event> = $crate::operation::Consumer::new($durable);
        )*

        /// Every durable consumer of this service.
        pub const CONSUMERS: &[$crate::operation::ConsumerInfo] = &[
            $( $crate::operation::ConsumerInfo {
                durable: $durable,
                subject: <$event as $crate::Event>::SUBJECT,
                stream: <$event as $crate::Event>::STREAM,
            }, )*
        ];
    };
}
