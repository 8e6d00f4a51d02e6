//! The typed request helper: the one way any SoulChat component calls an operation.
//!
//! It fixes the deadline (`SOULCHAT_REQUEST_TIMEOUT`), propagates the caller, request id and
//! trace context as headers, and turns the three ways a call can end (an answer, a service
//! error, nobody answering in time) into one `Result`.

use std::time::{Duration, Instant};

use async_nats::{HeaderMap, RequestErrorKind};
use tracing::Instrument;

use crate::error::{ErrorCode, ServiceError};
use crate::headers;
use crate::metrics::{self, Outcome};
use crate::operation::Operation;
use crate::proto::common::v1::ErrorBody;
use crate::wire::Format;

/// Who is calling and which client request this belongs to.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub user_id: Option<String>,
    pub request_id: String,
    pub traceparent: Option<String>,
    /// Where the client request came from (the gateway sets them; the audit log records them).
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl CallContext {
    /// A context for work that no client started (sagas, consumers): a fresh request id.
    pub fn internal() -> Self {
        CallContext { request_id: uuid::Uuid::now_v7().to_string(), ..Default::default() }
    }

    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Reads the context a request arrived with, so a worker calling onwards keeps it.
    pub fn from_headers(h: Option<&HeaderMap>) -> Self {
        let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        CallContext {
            user_id: get(headers::USER_ID).filter(|s| !s.is_empty()),
            request_id: get(headers::REQUEST_ID).unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            traceparent: get(headers::TRACEPARENT),
            client_address: get(headers::CLIENT_ADDRESS),
            user_agent: get(headers::USER_AGENT),
        }
    }

    fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(user) = &self.user_id {
            h.insert(headers::USER_ID, user.as_str());
        }
        h.insert(headers::REQUEST_ID, self.request_id.as_str());
        for (name, value) in [(headers::CLIENT_ADDRESS, &self.client_address), (headers::USER_AGENT, &self.user_agent)]
        {
            if let Some(value) = value {
                h.insert(name, value.as_str());
            }
        }
        // The calling span when this process traces; otherwise the context the request came with.
        if let Some(tp) = crate::trace::current().or_else(|| self.traceparent.clone()) {
            h.insert(headers::TRACEPARENT, tp.as_str());
        }
        h
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The worker answered with an error.
    #[error("{0}")]
    Service(ServiceError),
    /// No responders, or no answer before the deadline.
    #[error("{subject}: unavailable ({reason})")]
    Unavailable { subject: &'static str, reason: String },
    /// An answer that does not decode as the contract says: a version mismatch or a bug.
    #[error("{subject}: undecodable answer ({reason})")]
    Malformed { subject: &'static str, reason: String },
}

impl From<CallError> for ServiceError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Service(e) => e,
            CallError::Unavailable { .. } => ServiceError::unavailable(),
            CallError::Malformed { .. } => ServiceError::internal(),
        }
    }
}

/// Calls operations over NATS with a deadline.
#[derive(Debug, Clone)]
pub struct Caller {
    client: async_nats::Client,
    timeout: Duration,
}

impl Caller {
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Caller { client, timeout }
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn call<O: Operation>(&self, ctx: &CallContext, request: &O::Request) -> Result<O::Response, CallError> {
        let span = tracing::info_span!("call", otel.name = O::SUBJECT, otel.kind = "client");
        let started = Instant::now();
        let (answer, outcome) = self.exchange::<O>(ctx, request).instrument(span).await;
        metrics::rpc_called(O::SERVICE.name, O::ENDPOINT, outcome, started.elapsed());
        answer
    }

    /// One call, and how it ended for the metrics.
    async fn exchange<O: Operation>(
        &self,
        ctx: &CallContext,
        request: &O::Request,
    ) -> (Result<O::Response, CallError>, Outcome) {
        let format = Format::Protobuf;
        let mut headers = ctx.to_headers();
        headers.insert(headers::CONTENT_TYPE, format.content_type());
        let request =
            async_nats::Request::new().payload(format.encode(request)).headers(headers).timeout(Some(self.timeout));
        let reply = match self.client.send_request(O::SUBJECT, request).await {
            Ok(reply) => reply,
            Err(e) => {
                let (reason, outcome) = match e.kind() {
                    RequestErrorKind::NoResponders => ("no responders".to_owned(), Outcome::Unavailable),
                    RequestErrorKind::TimedOut => (format!("no answer within {:?}", self.timeout), Outcome::Timeout),
                    _ => (e.to_string(), Outcome::Unavailable),
                };
                tracing::warn!(subject = O::SUBJECT, %reason, "call failed");
                return (Err(CallError::Unavailable { subject: O::SUBJECT, reason }), outcome);
            }
        };

        let reply_format = Format::of(reply.headers.as_ref());
        if let Some(code) = reply.headers.as_ref().and_then(|h| h.get(headers::SERVICE_ERROR_CODE)) {
            let code = ErrorCode::from_u16(code.as_str().parse().unwrap_or(500));
            let body: ErrorBody = reply_format.decode(&reply.payload).unwrap_or_default();
            let mut error = ServiceError::from_body(ErrorBody {
                code: u32::from(code.as_u16()),
                message: if body.message.is_empty() {
                    reply
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(headers::SERVICE_ERROR))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default()
                } else {
                    body.message.clone()
                },
                ..body
            });
            error.code = code;
            return (Err(CallError::Service(error)), Outcome::Error(code.as_u16()));
        }
        match reply_format.decode(&reply.payload) {
            Ok(response) => (Ok(response), Outcome::Ok),
            Err(reason) => (Err(CallError::Malformed { subject: O::SUBJECT, reason }), Outcome::Malformed),
        }
    }
}
