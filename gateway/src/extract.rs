//! Request extractors whose rejections speak the API's error shape.
//!
//! `JsonBody` reads a body as JSON (the edge has already refused a body of another media type,
//! 415): malformed JSON, or anything after it, is 400 `body: ["is invalid"]`, a missing or
//! mistyped field is 422 naming the field (and the JSON type it wants, never a Rust one), a body
//! over the 64 KiB limit is 413, one that does not arrive within the body timeout 408. `Path`
//! answers a path segment that does not decode (invalid UTF-8) with a JSON 400. `Meta` carries
//! the request id and trace context into every NATS call.

use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use soulchat_subjects::{CallContext, ServiceError, headers};

use crate::client::ClientAddr;
use crate::error::ApiError;

/// The most a JSON body may weigh.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a body may take when the server set no [`BodyTimeout`](crate::server::BodyTimeout).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let timeout = req.extensions().get::<crate::server::BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
        let bytes = match tokio::time::timeout(timeout, Bytes::from_request(req, state)).await {
            Ok(read) => read.map_err(|e| {
                ApiError(match e {
                    BytesRejection::FailedToBufferBody(_) if is_too_large(&e) => {
                        ServiceError::too_large("body", MAX_BODY_BYTES)
                    }
                    _ => ServiceError::bad_request("body", "is invalid"),
                })
                .into_response()
            })?,
            Err(_) => return Err(body_timed_out()),
        };
        parse(&bytes).map(JsonBody).map_err(|e| ApiError(e).into_response())
    }
}

/// 408, and the connection closes: the rest of the body may still be on its way.
fn body_timed_out() -> Response {
    let body = serde_json::json!({ "errors": { "body": ["did not arrive in time"] } });
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn is_too_large(e: &BytesRejection) -> bool {
    e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE
}

/// Parses `bytes` as one JSON value of type `T` (nothing may follow it), naming the offending
/// field when the JSON is well-formed but wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ServiceError::bad_request("body", "is invalid");
        }
        let message = inner.to_string();
        // serde says "missing field `user` at line 1 column 2": name that field.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            return ServiceError::invalid(field, "can't be blank");
        }
        let field = e
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .next_back()
            .unwrap_or_else(|| "body".to_owned());
        let expected = message.split(", expected ").nth(1).map(|e| e.split(" at line").next().unwrap_or(e));
        match expected.and_then(json_kind) {
            Some(expected) => ServiceError::invalid(&field, &format!("is invalid (expected {expected})")),
            None => ServiceError::invalid(&field, "is invalid"),
        }
    })?;
    de.end().map_err(|_| ServiceError::bad_request("body", "is invalid"))?;
    Ok(value)
}

/// What serde expected, said in JSON's terms: serde names Rust types ("struct LoginBody",
/// "u32"), which mean nothing to a client and tell an attacker about the code. The values an
/// enum accepts ("one of `ping`, `send`") are the API's own words and stay.
fn json_kind(expected: &str) -> Option<&str> {
    let words = |list: &[&str]| list.iter().any(|w| expected.split(|c: char| !c.is_alphanumeric()).any(|x| x == *w));
    Some(match expected {
        e if e.starts_with("one of `") => e,
        _ if words(&["struct", "map"]) => "an object",
        _ if words(&["sequence", "tuple", "array"]) => "an array",
        _ if words(&["string", "str", "char"]) => "a string",
        _ if words(&["bool", "boolean"]) => "true or false",
        _ if words(&["u8", "u16", "u32", "u64", "u128", "usize"]) => "a non-negative integer",
        _ if words(&["i8", "i16", "i32", "i64", "i128", "isize", "integer"]) => "an integer",
        _ if words(&["f32", "f64", "number"]) => "a number",
        _ => return None,
    })
}

/// A path parameter; one that does not decode (invalid UTF-8, say) is 400 `path: ["is invalid"]`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|_| ServiceError::bad_request("path", "is invalid"))?;
        Ok(Path(value))
    }
}

/// Request id (generated unless the client sent one), W3C trace context, and the client's
/// address and user agent.
pub struct Meta(pub CallContext);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(ClientAddr(client)) = ClientAddr::from_request_parts(parts, state).await;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map(str::to_owned)
        };
        Ok(Meta(CallContext {
            user_id: None,
            request_id: header(headers::REQUEST_ID)
                .or_else(|| header("x-request-id"))
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            traceparent: header(headers::TRACEPARENT),
            client_address: Some(client.to_string()),
            user_agent: header("user-agent"),
        }))
    }
}

/// `cursor` and `limit` of a list request, and the other query parameters. A `limit` that is
/// not a number is 422 here; its range (1–100, default 50) is the worker's rule.
pub struct Paging {
    pub cursor: String,
    pub limit: Option<u32>,
    params: Vec<(String, String)>,
}

impl Paging {
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|_| ServiceError::bad_request("query", "is invalid"))?;
        let find = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let limit = match find("limit") {
            None => None,
            Some(limit) => Some(limit.trim().parse::<u32>().map_err(|_| soulchat_subjects::paging::out_of_range())?),
        };
        Ok(Paging { cursor: find("cursor").unwrap_or_default(), limit, params })
    }
}

#[cfg(test)]
mod tests {
    use soulchat_subjects::ErrorCode;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        user: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        #[serde(default)]
        username: String,
    }

    #[test]
    fn malformed_json_is_400_and_wrong_types_are_422_by_field() {
        assert_eq!(parse::<Outer>(b"{not json").unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(parse::<Outer>(b"").unwrap_err().code, ErrorCode::BadRequest);
        let e = parse::<Outer>(br#"{"user":{"username":5}}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unprocessable);
        assert!(e.fields.contains_key("username"), "{e:?}");
        let e = parse::<Outer>(b"{}").unwrap_err();
        assert_eq!((e.code, e.fields["user"][0].as_str()), (ErrorCode::Unprocessable, "can't be blank"));
        let e = parse::<Outer>(b"[]").unwrap_err();
        assert_eq!(e.code, ErrorCode::Unprocessable);
    }

    #[test]
    fn trailing_bytes_are_400_and_no_message_names_a_rust_type() {
        let e = parse::<Outer>(br#"{"user":{}} trailing"#).unwrap_err();
        assert_eq!((e.code, e.fields["body"][0].as_str()), (ErrorCode::BadRequest, "is invalid"));
        assert!(parse::<Outer>(b"{\"user\":{}}  \n").is_ok(), "whitespace may follow");
        for (body, field) in [
            (&br#"{"user":"x"}"#[..], "user"),
            (br#"{"user":[1]}"#, "user"),
            (br#"{"user":{"username":[]}}"#, "username"),
            (br#""x""#, "body"),
        ] {
            let e = parse::<Outer>(body).unwrap_err();
            let message = &e.fields[field][0];
            assert!(
                !message.contains("struct") && !message.contains("Inner") && !message.contains("Outer"),
                "{message}"
            );
        }
        let e = parse::<Outer>(br#"{"user":"x"}"#).unwrap_err();
        assert_eq!(e.fields["user"][0], "is invalid (expected an object)");
    }
}
