//! Header names SoulChat puts on NATS messages.

/// The authenticated caller, set by the gateway after it verified the JWT. Workers trust it
/// because only the gateway and workers may publish to request subjects (see `nats/`).
pub const USER_ID: &str = "Soulchat-User-Id";
/// Correlates one client request across every hop.
pub const REQUEST_ID: &str = "Soulchat-Request-Id";
/// The client's address and user agent as the gateway saw them, for the audit log.
pub const CLIENT_ADDRESS: &str = "Soulchat-Client-Address";
pub const USER_AGENT: &str = "Soulchat-User-Agent";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// `application/json` asks for proto3 JSON instead of protobuf, both ways.
pub const CONTENT_TYPE: &str = "Content-Type";
/// NATS service protocol error headers, as async-nats names them.
pub use async_nats::service::{NATS_SERVICE_ERROR as SERVICE_ERROR, NATS_SERVICE_ERROR_CODE as SERVICE_ERROR_CODE};
/// JetStream de-duplication key.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// On a dead-lettered notification delivery: how many attempts were made.
pub const DELIVERY_ATTEMPTS: &str = "Soulchat-Delivery-Attempts";
/// On a dead-lettered notification delivery: the last attempt's error.
pub const DELIVERY_ERROR: &str = "Soulchat-Delivery-Error";
