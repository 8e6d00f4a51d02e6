//! The HTTP server: our own accept loop over hyper, because `axum::serve` has no timeouts and no
//! connection cap, and 21,000 half-open connections from one client once used up the gateway's
//! file descriptors until `/healthz` stopped answering.
//!
//! - Open connections (WebSockets included) are capped in total, below the process's open-files
//!   limit, and per client address (trusted proxies are exempt: every client behind them shares
//!   their address); a connection over a cap is closed at once, before a byte is read.
//! - A request head must arrive within the header timeout (hyper's timer, which also runs while
//!   a keep-alive connection waits for its next request); a JSON body within the body timeout
//!   (`extract::JsonBody`, which reads the [`BodyTimeout`] set here); a connection with no
//!   traffic either way for the idle timeout is asked to close (a request in flight finishes).
//! - On shutdown the listener closes, idle connections close, and requests in flight finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use soulchat_subjects::metrics;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::client::TrustedProxies;

/// Files the process keeps beyond client connections: NATS, Redis, and in `soulchat up` the
/// workers' databases and the nats-server child's pipes.
const RESERVED_FILES: u64 = 1024;

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at most; `None`: as many as the open-files limit allows, less a reserve
    /// (always capped there).
    pub max: Option<usize>,
    /// Open connections per client address.
    pub per_address: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

/// How long a request body may take to arrive, for the extractors that read one.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// A connection's place under the caps, freed when the last holder drops it: the connection's
/// task, or a WebSocket session that outlives it (the upgrade hands the socket on).
#[derive(Clone)]
pub struct Slot {
    _held: Arc<Held>,
}

struct Held {
    counts: Arc<Counts>,
    address: Option<IpAddr>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut per_address = self.counts.per_address.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per_address.get_mut(&address) {
                *n -= 1;
                if *n == 0 {
                    per_address.remove(&address);
                }
            }
        }
        metrics::http_connection_closed();
    }
}

struct Counts {
    max: usize,
    per_address_max: usize,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Counts {
    /// A slot for a connection from `peer`, or `None` over a cap.
    fn admit(self: &Arc<Self>, peer: IpAddr, trusted: &TrustedProxies) -> Option<Slot> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let address = (!trusted.trusts(peer)).then_some(peer);
        if let Some(address) = address {
            let mut per_address = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = per_address.entry(address).or_insert(0);
            if *n >= self.per_address_max {
                drop(per_address);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            *n += 1;
        }
        metrics::http_connection_opened();
        Some(Slot { _held: Arc::new(Held { counts: self.clone(), address }) })
    }
}

/// Raises the open-files soft limit to the hard one and returns the connection cap that fits
/// under it.
pub fn connection_cap(wanted: Option<usize>) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("raising the open-files limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
        }
    };
    let fits = files.saturating_sub(RESERVED_FILES.min(files / 2)) as usize;
    match wanted {
        Some(wanted) if wanted > fits => {
            tracing::warn!(
                wanted,
                open_files = files,
                cap = fits,
                "connection cap lowered to fit the open-files limit"
            );
            fits
        }
        Some(wanted) => wanted,
        None => fits,
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    trusted: TrustedProxies,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let counts = Arc::new(Counts {
        max: connection_cap(limits.max),
        per_address_max: limits.per_address,
        open: AtomicUsize::new(0),
        per_address: Mutex::default(),
    });
    tracing::info!(max = counts.max, per_address = counts.per_address_max, "HTTP connection caps");
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files (EMFILE) or a connection gone before it was accepted: wait a
                    // moment rather than spin on a backlog that cannot be taken.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = counts.admit(peer.ip(), &trusted) else {
            metrics::http_connection_refused();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            slot,
            router: router.clone(),
            builder: builder.clone(),
            body_timeout: limits.body_timeout,
            idle_timeout: limits.idle_timeout,
        };
        tracker.spawn(connection.run(stream, shutdown.clone()));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

struct Connection {
    peer: SocketAddr,
    slot: Slot,
    router: axum::Router,
    builder: http1::Builder,
    body_timeout: Duration,
    idle_timeout: Duration,
}

impl Connection {
    async fn run(self, stream: TcpStream, shutdown: CancellationToken) {
        let Connection { peer, slot, router, builder, body_timeout, idle_timeout } = self;
        let started = Instant::now();
        let last_traffic = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Metered { inner: stream, started, last_traffic: last_traffic.clone() });
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let extensions = request.extensions_mut();
            extensions.insert(ConnectInfo(peer));
            extensions.insert(slot.clone());
            extensions.insert(BodyTimeout(body_timeout));
            router.clone().call(request)
        });
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let idle_check = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle_check);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                    break;
                }
                _ = &mut idle_check, if !closing => {
                    let last = Duration::from_millis(last_traffic.load(Ordering::Relaxed));
                    let idle = started.elapsed().saturating_sub(last);
                    if idle >= idle_timeout {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    } else {
                        idle_check.as_mut().reset(tokio::time::Instant::now() + (idle_timeout - idle));
                    }
                }
                _ = shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// The connection's socket, noting when bytes last moved either way (for the idle timeout).
struct Metered {
    inner: TcpStream,
    started: Instant,
    /// Milliseconds since `started`.
    last_traffic: Arc<AtomicU64>,
}

impl Metered {
    fn moved(&self) {
        self.last_traffic.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Metered {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        result
    }
}

impl AsyncWrite for Metered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_total_and_per_address_and_free_on_drop() {
        let counts =
            Arc::new(Counts { max: 3, per_address_max: 2, open: AtomicUsize::new(0), per_address: Mutex::default() });
        let (a, b, proxy): (IpAddr, IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let first = counts.admit(a, &trusted).unwrap();
        let _second = counts.admit(a, &trusted).unwrap();
        assert!(counts.admit(a, &trusted).is_none(), "per address");
        let _third = counts.admit(b, &trusted).unwrap();
        assert!(counts.admit(proxy, &trusted).is_none(), "in total");
        drop(first);
        assert!(counts.admit(proxy, &trusted).is_some(), "a freed slot is free again");
        assert_eq!(counts.per_address.lock().unwrap().get(&a), Some(&1));
    }
}
