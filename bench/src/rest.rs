//! REST throughput: anonymous `GET /api/profiles/<name>` at a fixed concurrency (gateway, one
//! NATS request, the profile worker's read), and login apart, because argon2 bounds login on
//! purpose (one hash per core at a time) and would otherwise hide everything else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::api::{Api, run_prefix};
use crate::baseline::{REQUEST_REPLY, REQUEST_REPLY_PIPELINED};
use crate::progress::Progress;
use crate::report::{Check, Figure, Report, histogram, latencies, record};

#[derive(Debug, Serialize, clap::Args)]
pub struct Options {
    /// GET requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of GET profile.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 4)]
    login_concurrency: usize,
    /// Seconds of logins (0 skips them).
    #[arg(long, default_value_t = 5.0)]
    login_seconds: f64,
}

/// What one load loop saw.
struct Outcome {
    ok: u64,
    failed: u64,
    first_failure: Option<String>,
    seconds: f64,
    latencies: Histogram<u64>,
}

/// Runs the scenario with its connections spread over the gateways at `apis`.
pub async fn run(apis: &[String], options: &Options) -> anyhow::Result<Report> {
    let client = Api::new(&apis[0], options.concurrency.max(options.login_concurrency))?;
    let user = client.account(&format!("{}0", run_prefix())).await?;
    let mut report = Report::new("rest", serde_json::to_value(options)?);

    let path = format!("/api/profiles/{}", user.name);
    let mut connections = Vec::with_capacity(options.concurrency);
    for i in 0..options.concurrency {
        connections.push(tokio::sync::Mutex::new(Http1::connect(&apis[i % apis.len()]).await?));
    }
    let get = load("GET profile", options.concurrency, options.seconds, |i| {
        let (connections, path) = (&connections, &path);
        async move { connections[i].lock().await.get_ok(path).await }
    })
    .await;
    report.figures.push(
        Figure::new("GET profile: rate", get.ok as f64 / get.seconds, "req/s")
            .versus(format!("{REQUEST_REPLY_PIPELINED}: rate")),
    );
    report.figures.extend(latencies("GET profile", &get.latencies, Some(REQUEST_REPLY)));
    report.checks.push(answered("GET profile", &get));

    if options.login_seconds > 0.0 {
        let login_url = client.url("/api/users/login");
        let body = json!({"user": {"email": format!("{}@bench.example", user.name), "password": crate::api::PASSWORD}});
        let login = load("login", options.login_concurrency, options.login_seconds, |_| async {
            let response = client.http().post(&login_url).json(&body).send().await.map_err(|e| e.to_string())?;
            expect(response, StatusCode::OK).await
        })
        .await;
        report.figures.push(Figure::new("login (argon2-bound): rate", login.ok as f64 / login.seconds, "req/s"));
        report.figures.extend(latencies("login (argon2-bound)", &login.latencies, None));
        report.checks.push(answered("login", &login));
    }
    report.notes.push(format!(
        "GET profile: {} concurrent anonymous requests over keep-alive connections; login: {} at once, one account",
        options.concurrency, options.login_concurrency
    ));
    Ok(report)
}

/// One keep-alive HTTP/1 connection driven by hyper directly, for the GET loops: the load tool
/// shares the box with the system, and a pooled client that parses the URL and checks a
/// connection out of a shared pool on every request took more than half a core at these rates.
struct Http1 {
    host: String,
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
}

impl Http1 {
    async fn connect(api: &str) -> anyhow::Result<Http1> {
        let url = reqwest::Url::parse(api)?;
        let host = url.host_str().ok_or_else(|| anyhow::anyhow!("{api} names no host"))?;
        let host = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        let stream = tokio::net::TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Http1 { host, sender })
    }

    /// GETs `path` and reads the body; anything but 200 is a failure.
    async fn get_ok(&mut self, path: &str) -> Result<(), String> {
        use http_body_util::BodyExt;
        let request = http::Request::get(path)
            .header(http::header::HOST, &self.host)
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if status == http::StatusCode::OK {
            Ok(())
        } else {
            Err(format!("{status} {}", String::from_utf8_lossy(&body)))
        }
    }
}

async fn expect(response: reqwest::Response, status: StatusCode) -> Result<(), String> {
    if response.status() == status {
        response.bytes().await.map(|_| ()).map_err(|e| e.to_string())
    } else {
        Err(format!("{} {}", response.status(), response.text().await.unwrap_or_default()))
    }
}

fn answered(what: &'static str, outcome: &Outcome) -> Check {
    Check {
        name: what,
        passed: outcome.failed == 0,
        detail: match &outcome.first_failure {
            Some(first) => {
                format!("{} of {} requests failed; first: {first}", outcome.failed, outcome.ok + outcome.failed)
            }
            None => format!("all {} requests answered", outcome.ok),
        },
    }
}

/// `concurrency` loops each sending `one(loop index)` back to back for `seconds`; failures are
/// counted, not fatal.
async fn load<F, Fut>(label: &str, concurrency: usize, seconds: f64, one: F) -> Outcome
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (shown_ok, shown_failed) = (ok.clone(), failed.clone());
    let _progress = Progress::start(label, move || {
        format!("{} answered, {} failed", shown_ok.load(Ordering::Relaxed), shown_failed.load(Ordering::Relaxed))
    });
    let first_failure = Mutex::new(None);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let loops = (0..concurrency).map(|i| {
        let (one, ok, failed, first_failure) = (&one, &ok, &failed, &first_failure);
        async move {
            let mut hist = histogram();
            while Instant::now() < deadline {
                let at = Instant::now();
                match one(i).await {
                    Ok(()) => {
                        record(&mut hist, at.elapsed());
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_failure.lock().expect("not poisoned").get_or_insert(e);
                    }
                }
            }
            hist
        }
    });
    let mut latencies = histogram();
    for hist in futures::future::join_all(loops).await {
        latencies.add(&hist).expect("histograms of the same bounds");
    }
    Outcome {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        first_failure: first_failure.into_inner().expect("not poisoned"),
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}
