//! Local HTTP endpoints playing the push service and the SMS provider: they record what they
//! receive and answer with the status a test sets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

struct Shared {
    status: Mutex<u16>,
    tx: mpsc::UnboundedSender<Received>,
}

pub struct Endpoint {
    pub base: String,
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl Endpoint {
    /// Serves every POST path on a free local port, answering `default`.
    pub async fn start(default: u16) -> Endpoint {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { status: Mutex::new(default), tx });
        let app = axum::Router::new().route("/{*path}", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Endpoint { base, shared, rx: tokio::sync::Mutex::new(rx) }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    pub async fn next(&self) -> Received {
        self.next_within(Duration::from_secs(20)).await.expect("a request within 20 s")
    }

    pub async fn next_within(&self, wait: Duration) -> Option<Received> {
        let mut rx = self.rx.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = shared.tx.send(Received { path: uri.path().to_owned(), headers, body });
    StatusCode::from_u16(*shared.status.lock().unwrap()).unwrap()
}
