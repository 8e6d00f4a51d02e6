//! Serving a contract: a worker registers with the NATS service API as `soulchat-<domain>`
//! (one endpoint per operation, queue group `soulchat-<domain>` so replicas share load), decodes
//! each request in the format it came in (protobuf, or proto3 JSON on `Content-Type:
//! application/json`), runs its handler and answers in the same format, errors included.
//!
//! Shutdown drains: endpoints unsubscribe, requests already received finish and are answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::service::{Service, ServiceExt};
use futures::StreamExt;
use soulchat_subjects::headers;
use soulchat_subjects::proto::common::v1::HealthReply;
use soulchat_subjects::wire::Payload;
use soulchat_subjects::{CallContext, Format, Operation, ServiceDef, ServiceError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests one worker process handles at once; beyond that, requests wait in NATS (and the
/// caller's deadline bounds the wait) instead of piling up tasks in memory.
const MAX_IN_FLIGHT: usize = 1024;

/// What a handler knows about the request besides its payload.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Caller, request id and trace context, to pass on when calling other workers.
    pub call: CallContext,
}

impl RequestContext {
    /// The authenticated caller. Every operation that needs one fails with 401 without it.
    pub fn user_id(&self) -> Result<&str, ServiceError> {
        self.call.user_id.as_deref().ok_or_else(|| ServiceError::unauthorized("token", "is missing"))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A type-erased endpoint: request bytes in, reply (or error) bytes out, in `Format`.
type Responder = Arc<dyn Fn(RequestContext, Format, bytes::Bytes) -> BoxFuture<Reply> + Send + Sync>;

enum Reply {
    Ok(bytes::Bytes),
    Err(ServiceError),
}

struct EndpointSpec {
    name: &'static str,
    subject: &'static str,
    responder: Responder,
}

/// Collects a worker's endpoints before it starts serving.
pub struct WorkerBuilder<S> {
    def: ServiceDef,
    version: &'static str,
    state: S,
    endpoints: Vec<EndpointSpec>,
    stats: Option<StatsFn>,
}

/// Extra figures a worker reports in `$SRV.STATS` (the `data` of each endpoint).
pub type StatsFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

impl<S: Clone + Send + Sync + 'static> WorkerBuilder<S> {
    /// A worker for `def`, handing `state` to every handler. The `health` operation is built in.
    pub fn new(def: ServiceDef, version: &'static str, state: S) -> Self {
        let name = def.name;
        let builder = WorkerBuilder { def, version, state, endpoints: Vec::new(), stats: None };
        builder.endpoint(
            "health",
            format!("{}.health", def.subject_prefix).leak(),
            move |_state, _ctx, _req: soulchat_subjects::proto::common::v1::HealthRequest| async move {
                Ok(HealthReply { service: name.to_owned(), version: version.to_owned() })
            },
        )
    }

    /// Registers the handler of operation `O`.
    pub fn handle<O, F, Fut>(self, handler: F) -> Self
    where
        O: Operation,
        F: Fn(S, RequestContext, O::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O::Response, ServiceError>> + Send + 'static,
    {
        debug_assert_eq!(O::SERVICE, self.def, "{} registered on the wrong service", O::SUBJECT);
        self.endpoint(O::NAME, O::SUBJECT, handler)
    }

    fn endpoint<Req, Resp, F, Fut>(mut self, name: &'static str, subject: &'static str, handler: F) -> Self
    where
        Req: Payload,
        Resp: Payload,
        F: Fn(S, RequestContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, ServiceError>> + Send + 'static,
    {
        let state = self.state.clone();
        let handler = Arc::new(handler);
        let responder: Responder = Arc::new(move |ctx, format, payload| {
            let state = state.clone();
            let handler = handler.clone();
            Box::pin(async move {
                let request: Req = match format.decode(&payload) {
                    Ok(request) => request,
                    Err(reason) => {
                        return Reply::Err(ServiceError::bad_request("body", &format!("is invalid: {reason}")));
                    }
                };
                match handler(state, ctx, request).await {
                    Ok(response) => Reply::Ok(format.encode(&response)),
                    Err(error) => Reply::Err(error),
                }
            })
        });
        self.endpoints.push(EndpointSpec { name, subject, responder });
        self
    }

    /// Reports `stats()` in `$SRV.STATS`, so operators see it with `nats micro stats`.
    pub fn stats(mut self, stats: impl Fn() -> serde_json::Value + Send + Sync + 'static) -> Self {
        self.stats = Some(Box::new(stats));
        self
    }

    /// Registers with the service API and starts serving until `shutdown` is cancelled.
    pub async fn start(self, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<Worker> {
        let mut builder = client.service_builder().description(self.def.description).queue_group(self.def.name);
        if let Some(stats) = self.stats {
            builder = builder.stats_handler(move |_endpoint, _stats| stats());
        }
        let service = builder
            .start(self.def.name, self.version)
            .await
            .map_err(|e| anyhow::anyhow!("registering {} with the service API: {e}", self.def.name))?;
        let tracker = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        for spec in self.endpoints {
            let endpoint = service
                .endpoint_builder()
                .name(spec.name)
                .add(spec.subject)
                .await
                .map_err(|e| anyhow::anyhow!("adding endpoint {}: {e}", spec.subject))?;
            tracker.spawn(serve_endpoint(endpoint, spec.responder, tracker.clone(), permits.clone()));
        }
        tracing::info!(service = self.def.name, version = self.version, "worker serving");
        Ok(Worker { name: self.def.name, service, tracker, client, shutdown })
    }
}

async fn serve_endpoint(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    responder: Responder,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
) {
    while let Some(request) = endpoint.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let responder = responder.clone();
        tracker.spawn(async move {
            let _permit = permit;
            answer(request, responder).await;
        });
    }
}

async fn answer(request: async_nats::service::Request, responder: Responder) {
    let headers = request.message.headers.as_ref();
    let format = Format::of(headers);
    let ctx = RequestContext { call: CallContext::from_headers(headers) };
    let subject = request.message.subject.clone();
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::CONTENT_TYPE, format.content_type());
    let payload = request.message.payload.clone();
    let outcome = match responder(ctx.clone(), format, payload).await {
        Reply::Ok(body) => request.respond_with_headers(Ok(body), reply_headers).await,
        Reply::Err(error) => {
            if error.code >= 500 {
                tracing::error!(%subject, request_id = %ctx.call.request_id, %error, "request failed");
            } else {
                tracing::debug!(%subject, %error, "request refused");
            }
            // The service protocol's error headers, plus a body with the field details.
            reply_headers.insert(headers::SERVICE_ERROR, error.message.as_str());
            reply_headers.insert(headers::SERVICE_ERROR_CODE, error.code.to_string().as_str());
            request.respond_with_headers(Ok(format.encode(&error.to_body())), reply_headers).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(%subject, "could not send reply: {e}");
    }
}

/// A serving worker. Dropping it does not stop it; call [`Worker::run_until_shutdown`].
pub struct Worker {
    name: &'static str,
    service: Service,
    tracker: TaskTracker,
    client: async_nats::Client,
    shutdown: CancellationToken,
}

impl Worker {
    /// Serves until the shutdown token is cancelled, then drains: the endpoints unsubscribe, the
    /// requests already received are answered, and the connection flushes.
    pub async fn run_until_shutdown(self) {
        self.shutdown.cancelled().await;
        tracing::info!(service = self.name, "draining");
        if let Err(e) = self.service.stop().await {
            tracing::warn!(service = self.name, "stopping service: {e}");
        }
        self.tracker.close();
        self.tracker.wait().await;
        let _ = self.client.flush().await;
        tracing::info!(service = self.name, "stopped");
    }
}
