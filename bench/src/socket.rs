//! Opening the scenarios' WebSockets: an `Authorization: Token` upgrade over a TCP socket that may
//! be bound to a chosen 127.0.0.x source address first, since each source address has only its
//! own ~28,000 ephemeral ports towards one gateway port, and with buffers sized on purpose, since
//! the library zero-fills a 128 KiB read buffer per socket by default: thousands of sockets must
//! stay cheap in the tool too.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Where the gateway's `/ws` is.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    pub addr: SocketAddr,
}

impl Target {
    pub async fn resolve(api: &str) -> anyhow::Result<Self> {
        let Some(rest) = api.strip_prefix("http://") else {
            bail!("--api must be an http:// URL (the benchmark speaks plain HTTP and WebSocket): {api}");
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        Ok(Target { url: format!("ws://{authority}/ws"), addr })
    }
}

/// Upgrades to a WebSocket as the holder of `token`, from `source` when given, reading through a
/// `read_buffer`-byte buffer.
pub async fn connect(target: &Target, token: &str, source: Option<IpAddr>, read_buffer: usize) -> anyhow::Result<Ws> {
    let socket = if target.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("binding to {source}"))?;
    }
    let stream = socket.connect(target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let mut request = target.url.as_str().into_client_request()?;
    request.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Token {token}"))?);
    let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            bail!("the WebSocket upgrade was refused: {} {body}", response.status())
        }
        Err(e) => Err(e).context("the WebSocket upgrade"),
    }
}
