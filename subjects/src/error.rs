//! The error envelope every worker answers with and every caller understands.
//!
//! On the wire an error reply carries the NATS service protocol headers
//! (`Nats-Service-Error-Code`, HTTP-like, and `Nats-Service-Error`) and an
//! [`ErrorBody`](crate::proto::common::v1::ErrorBody) with field-level details. The gateway maps
//! the code to the HTTP status and the fields to the RealWorld `{"errors": {...}}` body.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::proto::common::v1::{ErrorBody, FieldErrors};

/// The HTTP-like codes an error reply may carry (`Nats-Service-Error-Code`); the gateway answers
/// with the same HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The request itself could not be read.
    BadRequest = 400,
    Unauthorized = 401,
    /// Known, but not allowed.
    Forbidden = 403,
    NotFound = 404,
    /// A body that stopped arriving.
    RequestTimeout = 408,
    /// Taken, or in a state that refuses the change.
    Conflict = 409,
    PayloadTooLarge = 413,
    /// A body that is not the media type the endpoint reads (JSON).
    UnsupportedMediaType = 415,
    /// A `Range` that is not one the resource can serve.
    RangeNotSatisfiable = 416,
    /// A field failed validation.
    Unprocessable = 422,
    TooManyRequests = 429,
    /// Our fault: the detail goes to the log, never to the client.
    Internal = 500,
    /// A dependency did not answer, or is not configured.
    Unavailable = 503,
}

impl ErrorCode {
    const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::Unprocessable,
        ErrorCode::TooManyRequests,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code a reply names; one this contract does not know counts as ours to blame (500).
    pub fn from_u16(code: u16) -> ErrorCode {
        Self::ALL.into_iter().find(|c| c.as_u16() == code).unwrap_or(ErrorCode::Internal)
    }

    /// Whether the fault is on the server's side (5xx).
    pub fn is_server_error(self) -> bool {
        self.as_u16() >= 500
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// Field name -> problems. Never empty once built through the constructors below, so that
    /// a client always learns *what* is wrong.
    pub fields: BTreeMap<String, Vec<String>>,
    pub retry_after: Option<Duration>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, field: &str, problem: &str) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(field.to_owned(), vec![problem.to_owned()]);
        ServiceError { code, message: format!("{field} {problem}"), fields, retry_after: None }
    }

    /// 400: the request itself could not be read.
    pub fn bad_request(field: &str, problem: &str) -> Self {
        Self::new(ErrorCode::BadRequest, field, problem)
    }
    /// 401.
    pub fn unauthorized(field: &str, problem: &str) -> Self {
        Self::new(ErrorCode::Unauthorized, field, problem)
    }
    /// 403: known, but not allowed.
    pub fn forbidden(field: &str, problem: &str) -> Self {
        Self::new(ErrorCode::Forbidden, field, problem)
    }
    /// 404 `{field: ["not found"]}`.
    pub fn not_found(field: &str) -> Self {
        Self::new(ErrorCode::NotFound, field, "not found")
    }
    /// 409 `{field: ["has already been taken"]}`.
    pub fn taken(field: &str) -> Self {
        Self::conflict(field, "has already been taken")
    }
    /// 409: the change conflicts with the current state.
    pub fn conflict(field: &str, problem: &str) -> Self {
        Self::new(ErrorCode::Conflict, field, problem)
    }
    /// 413: a body or frame over its limit.
    pub fn too_large(field: &str, limit_bytes: usize) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, field, &format!("is too large (maximum is {limit_bytes} bytes)"))
    }
    /// 422: a field failed validation.
    pub fn invalid(field: &str, problem: &str) -> Self {
        Self::new(ErrorCode::Unprocessable, field, problem)
    }
    /// 429 with the time to wait.
    pub fn too_many(field: &str, retry_after: Duration) -> Self {
        let mut e = Self::new(ErrorCode::TooManyRequests, field, "too many attempts");
        e.retry_after = Some(retry_after);
        e
    }
    /// 500: our fault. The detail goes to the log, never to the client.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "server", "internal error")
    }
    /// 503: a dependency did not answer in time.
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "service", "unavailable")
    }
    /// 503 `{field: ["is not configured on this server"]}`: a channel this server lacks.
    pub fn not_configured(field: &str) -> Self {
        Self::new(ErrorCode::Unavailable, field, "is not configured on this server")
    }

    /// Adds another problem, keeping the code: validation reports every bad field at once.
    pub fn and(mut self, field: &str, problem: &str) -> Self {
        self.fields.entry(field.to_owned()).or_default().push(problem.to_owned());
        self
    }

    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: u32::from(self.code.as_u16()),
            message: self.message.clone(),
            fields: self.fields.iter().map(|(k, v)| (k.clone(), FieldErrors { messages: v.clone() })).collect(),
            retry_after_ms: self.retry_after.map_or(0, |d| d.as_millis() as u64),
        }
    }

    pub fn from_body(body: ErrorBody) -> Self {
        let mut fields: BTreeMap<String, Vec<String>> = body.fields.into_iter().map(|(k, v)| (k, v.messages)).collect();
        if fields.is_empty() {
            fields.insert("service".to_owned(), vec![body.message.clone()]);
        }
        ServiceError {
            code: ErrorCode::from_u16(u16::try_from(body.code).unwrap_or(500)),
            message: body.message,
            fields,
            retry_after: (body.retry_after_ms > 0).then(|| Duration::from_millis(body.retry_after_ms)),
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

/// Collects field problems during validation, then yields one 422 naming all of them.
#[derive(Debug, Default)]
pub struct Validation {
    fields: BTreeMap<String, Vec<String>>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn problem(&mut self, field: &str, problem: &str) {
        self.fields.entry(field.to_owned()).or_default().push(problem.to_owned());
    }

    /// `Ok(())` when nothing was wrong, else a 422 with every problem found.
    pub fn finish(self) -> Result<(), ServiceError> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let message = self.fields.iter().map(|(k, v)| format!("{k} {}", v.join(", "))).collect::<Vec<_>>().join("; ");
        Err(ServiceError { code: ErrorCode::Unprocessable, message, fields: self.fields, retry_after: None })
    }
}
