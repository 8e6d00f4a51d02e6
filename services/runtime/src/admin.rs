//! The admin listener: what an operator's tools ask a process, on an address of its own
//! (`SOULCHAT_METRICS_ADDR`), never the public API port. `GET /metrics` is the Prometheus text
//! of every metric the process recorded, `/healthz` says the process is up, `/readyz` whether
//! each of its roles can do its work; any other path is 404.
//!
//! The recorder is the process's (the `metrics` facade has one global recorder): `soulchat up`
//! serves all its roles' metrics from one listener, each series labelled by its service where
//! roles share a name.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use soulchat_subjects::metrics::{self, CHAT_COMMIT_BATCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Bounds of the latency histograms, in seconds: 1 ms to 10 s.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bounds of the group-commit batch sizes (at most 512 sends a batch).
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often histograms are compacted between scrapes, so memory stays bounded without one.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on the first call; later calls share it.
fn recorder() -> anyhow::Result<PrometheusHandle> {
    static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Full(CHAT_COMMIT_BATCH.name.into()), BATCH_SIZES)?
        .install_recorder()
        .context("installing the metrics recorder")?;
    metrics::describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What `/readyz` asks: one check per role of the process, each saying why it is not ready.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(&'static str, Check)>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_list().entries(checks.iter().map(|(role, _)| role)).finish()
    }
}

impl Readiness {
    /// Adds `role`'s check, replacing one the role had (a restarted role).
    pub fn add<F, Fut>(&self, role: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        checks.retain(|(name, _)| *name != role);
        checks.push((role, check));
    }

    /// A role this process will run: not ready until it adds its check.
    pub fn expect(&self, role: &'static str) {
        self.add(role, || async { Err("starting".to_owned()) });
    }

    /// A role that is ready while its NATS connection is up.
    pub fn add_nats(&self, role: &'static str, client: async_nats::Client) {
        self.add(role, move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("NATS {other}")),
                }
            }
        });
    }

    /// Every role's answer, by role; ready when there is at least one role and all are.
    async fn report(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let checks: Vec<(&'static str, Check)> = self.checks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let answers = futures::future::join_all(checks.iter().map(|(_, check)| check())).await;
        let ready = !checks.is_empty() && answers.iter().all(Result::is_ok);
        let roles = checks
            .iter()
            .zip(answers)
            .map(|((role, _), answer)| {
                let answer = answer.map_or_else(serde_json::Value::String, |()| "ready".into());
                ((*role).to_owned(), answer)
            })
            .collect();
        (ready, roles)
    }
}

#[derive(Clone)]
struct Admin {
    handle: PrometheusHandle,
    readiness: Readiness,
}

/// The admin listener, bound and ready to serve.
pub struct Listener {
    listener: TcpListener,
    router: Router,
    handle: PrometheusHandle,
}

impl Listener {
    /// Installs the recorder (once per process) and binds `addr`.
    pub async fn bind(addr: SocketAddr, readiness: Readiness) -> anyhow::Result<Listener> {
        let handle = recorder()?;
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("binding the metrics listener to {addr}"))?;
        let router = Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(live))
            .route("/readyz", get(ready))
            .fallback(not_found)
            .with_state(Admin { handle: handle.clone(), readiness });
        Ok(Listener { listener, router, handle })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "metrics listening");
        let handle = self.handle;
        let upkeep = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP);
            loop {
                tokio::select! {
                    _ = every.tick() => handle.run_upkeep(),
                    _ = upkeep.cancelled() => break,
                }
            }
        });
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        Ok(())
    }
}

async fn scrape(State(admin): State<Admin>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], admin.handle.render()).into_response()
}

async fn live() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn ready(State(admin): State<Admin>) -> Response {
    let (ready, roles) = admin.readiness.report().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "status": if ready { "ready" } else { "unavailable" }, "roles": roles });
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "errors": { "route": ["not found"] } }))).into_response()
}
