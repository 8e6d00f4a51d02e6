//! The two encodings a payload may travel in: protobuf (the default) and proto3 JSON (when a
//! message carries `Content-Type: application/json`, so an operator can use `nats req`).

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::headers::CONTENT_TYPE;

pub const JSON: &str = "application/json";
pub const PROTOBUF: &str = "application/protobuf";

/// A message type that can travel in either encoding; every generated message is one.
pub trait Payload: prost::Message + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T> Payload for T where T: prost::Message + Default + Serialize + DeserializeOwned + Send + Sync + 'static {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The format a message's headers ask for.
    pub fn of(headers: Option<&HeaderMap>) -> Format {
        let json = headers.and_then(|h| h.get(CONTENT_TYPE)).is_some_and(|v| v.as_str().trim().starts_with(JSON));
        if json { Format::Json } else { Format::Protobuf }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }

    pub fn encode<T: Payload>(self, message: &T) -> Bytes {
        match self {
            Format::Protobuf => Bytes::from(message.encode_to_vec()),
            // Serialising a generated message to JSON cannot fail: every field has a JSON form.
            Format::Json => Bytes::from(serde_json::to_vec(message).unwrap_or_default()),
        }
    }

    /// Decodes a payload; an empty payload is the message's default (proto3 semantics), so
    /// `nats req subject ''` works for requests without fields.
    pub fn decode<T: Payload>(self, bytes: &[u8]) -> Result<T, String> {
        if bytes.is_empty() || (self == Format::Json && bytes.iter().all(u8::is_ascii_whitespace)) {
            return Ok(T::default());
        }
        match self {
            Format::Protobuf => T::decode(bytes).map_err(|e| e.to_string()),
            Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}
