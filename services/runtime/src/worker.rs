//! Serving a contract: a worker registers with the NATS service API as `soulchat-<domain>`
//! (one endpoint per operation, queue group `soulchat-<domain>` so replicas share load), decodes
//! each request in the format it came in (protobuf, or proto3 JSON on `Content-Type:
//! application/json`), runs its handler and answers in the same format, errors included.
//!
//! Shutdown drains: endpoints unsubscribe, requests already received finish and are answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_nats::HeaderMap;
use async_nats::service::{Service, ServiceExt};
use futures::StreamExt;
use soulchat_subjects::headers;
use soulchat_subjects::metrics::{self, Outcome};
use soulchat_subjects::proto::common::v1::{HealthReply, HealthRequest};
use soulchat_subjects::wire::Payload;
use soulchat_subjects::{CallContext, Format, Operation, ServiceDef, ServiceError, trace};
use tracing::Instrument;

use crate::error::Error;
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
/// A type-erased endpoint: request bytes in, reply bytes (or the refusal) out, in `Format`.
type Responder =
    Arc<dyn Fn(RequestContext, Format, bytes::Bytes) -> BoxFuture<Result<bytes::Bytes, ServiceError>> + Send + Sync>;
/// Extra figures a worker reports in `$SRV.STATS` (the `data` of each endpoint).
pub(crate) type StatsFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

struct EndpointSpec {
    name: &'static str,
    subject: &'static str,
    responder: Responder,
}

/// What answers an operation: an `async fn(Arc<S>, RequestContext, Request) -> Result<Response,
/// E>` whose error converts into [`Error`].
pub trait Handler<S, Req, Resp>: Send + Sync + 'static {
    fn call(&self, state: Arc<S>, ctx: RequestContext, request: Req) -> BoxFuture<Result<Resp, Error>>;
}

impl<S, Req, Resp, F, Fut, E> Handler<S, Req, Resp> for F
where
    F: Fn(Arc<S>, RequestContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    E: Into<Error>,
{
    fn call(&self, state: Arc<S>, ctx: RequestContext, request: Req) -> BoxFuture<Result<Resp, Error>> {
        let answer = self(state, ctx, request);
        Box::pin(async move { answer.await.map_err(Into::into) })
    }
}

/// A worker's endpoints, collected before it starts serving: the built-in `health`, then one
/// per operation its [`Service::endpoints`](crate::Service::endpoints) names, of any version.
pub struct Endpoints<S> {
    def: ServiceDef,
    state: Arc<S>,
    endpoints: Vec<EndpointSpec>,
}

impl<S: Send + Sync + 'static> Endpoints<S> {
    pub(crate) fn new(def: ServiceDef, version: &'static str, state: Arc<S>) -> Self {
        let name = def.name;
        let endpoints = Endpoints { def, state, endpoints: Vec::new() };
        endpoints.endpoint("health", def.health, move |_state, _ctx, _req: HealthRequest| async move {
            Ok::<_, Error>(HealthReply { service: name.to_owned(), version: version.to_owned() })
        })
    }

    /// Registers the handler of operation `O`.
    pub fn handle<O: Operation>(self, handler: impl Handler<S, O::Request, O::Response>) -> Self {
        assert_eq!(O::SERVICE, self.def, "{} registered on the wrong service", O::SUBJECT);
        self.endpoint(O::ENDPOINT, O::SUBJECT, handler)
    }

    fn endpoint<Req: Payload, Resp: Payload>(
        mut self,
        name: &'static str,
        subject: &'static str,
        handler: impl Handler<S, Req, Resp>,
    ) -> Self {
        let state = self.state.clone();
        let handler = Arc::new(handler);
        let responder: Responder = Arc::new(move |ctx, format, payload| {
            let state = state.clone();
            let handler = handler.clone();
            Box::pin(async move {
                let request: Req = match format.decode(&payload) {
                    Ok(request) => request,
                    Err(reason) => {
                        return Err(ServiceError::bad_request("body", &format!("is invalid: {reason}")));
                    }
                };
                match handler.call(state, ctx, request).await {
                    Ok(response) => Ok(format.encode(&response)),
                    Err(error) => Err(error.into_reply()),
                }
            })
        });
        self.endpoints.push(EndpointSpec { name, subject, responder });
        self
    }

    /// Registers with the service API and serves until `shutdown` is cancelled.
    pub(crate) async fn start(
        self,
        version: &'static str,
        stats: Option<StatsFn>,
        client: async_nats::Client,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Worker> {
        let mut builder = client.service_builder().description(self.def.description).queue_group(self.def.name);
        if let Some(stats) = stats {
            builder = builder.stats_handler(move |_endpoint, _stats| stats());
        }
        let service = builder
            .start(self.def.name, version)
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
            let names = Names { service: self.def.name, operation: spec.name, subject: spec.subject };
            tracker.spawn(serve_endpoint(endpoint, names, spec.responder, tracker.clone(), permits.clone()));
        }
        tracing::info!(service = self.def.name, version, "worker serving");
        Ok(Worker { name: self.def.name, service, tracker, client, shutdown })
    }
}

/// What an endpoint is called, in logs and metrics.
#[derive(Clone, Copy)]
struct Names {
    service: &'static str,
    operation: &'static str,
    subject: &'static str,
}

async fn serve_endpoint(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    names: Names,
    responder: Responder,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
) {
    while let Some(request) = endpoint.next().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let responder = responder.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let ctx = RequestContext { call: CallContext::from_headers(request.message.headers.as_ref()) };
            // Every line logged while answering carries the operation, request id and caller (and,
            // when tracing, the ids of this span, a child of the caller's).
            let span = tracing::info_span!(
                "request",
                otel.name = names.subject,
                otel.kind = "server",
                subject = names.subject,
                request_id = %ctx.call.request_id,
                caller = ctx.call.user_id.as_deref().unwrap_or("-"),
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty,
            );
            trace::set_parent(&span, ctx.call.traceparent.as_deref());
            trace::record_ids(&span);
            answer(request, names, ctx, responder).instrument(span).await;
        });
    }
}

async fn answer(request: async_nats::service::Request, names: Names, ctx: RequestContext, responder: Responder) {
    let started = Instant::now();
    let format = Format::of(request.message.headers.as_ref());
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::CONTENT_TYPE, format.content_type());
    let payload = request.message.payload.clone();
    let answered = responder(ctx, format, payload).await;
    let outcome = match &answered {
        Ok(_) => Outcome::Ok,
        Err(error) => Outcome::Error(error.code.as_u16()),
    };
    metrics::rpc_served(names.service, names.operation, outcome, started.elapsed());
    let outcome = match answered {
        Ok(body) => request.respond_with_headers(Ok(body), reply_headers).await,
        Err(error) => {
            if error.code.is_server_error() {
                tracing::warn!(%error, "request failed");
            } else {
                tracing::debug!(%error, "request refused");
            }
            // The service protocol's error headers, plus a body with the field details.
            reply_headers.insert(headers::SERVICE_ERROR, error.message.as_str());
            reply_headers.insert(headers::SERVICE_ERROR_CODE, error.code.as_u16().to_string().as_str());
            request.respond_with_headers(Ok(format.encode(&error.to_body())), reply_headers).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!("could not send reply: {e}");
    }
}

/// A serving worker. Dropping it does not stop it; call [`Worker::run_until_shutdown`].
pub(crate) struct Worker {
    name: &'static str,
    service: Service,
    tracker: TaskTracker,
    client: async_nats::Client,
    shutdown: CancellationToken,
}

impl Worker {
    /// Serves until the shutdown token is cancelled, then drains: the endpoints unsubscribe, the
    /// requests already received are answered, and the connection flushes.
    pub(crate) async fn run_until_shutdown(self) {
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
