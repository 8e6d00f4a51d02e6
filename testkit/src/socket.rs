//! A WebSocket client for tests: connects as a user (header or ticket), sends frames, and waits
//! for the next frame or the close, always with a deadline, so a test fails instead of hanging.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The server's close code and reason.
    Code(u16, String),
    /// The connection dropped without a close frame.
    Dropped,
}

impl Socket {
    /// Connects to `<base>/ws` with `Authorization: Token <token>`.
    pub async fn connect(base: &str, token: &str) -> Socket {
        Self::try_connect(base, Some(token), None, None).await.expect("the WebSocket upgrade succeeds")
    }

    /// Connects with a tiny receive buffer and then reads nothing unless asked: a client that
    /// cannot keep up.
    pub async fn connect_slow(base: &str, token: &str) -> Socket {
        let url = format!("{}/ws", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("a WebSocket URL");
        request.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Token {token}")).unwrap());
        let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().expect("a gateway address");
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(4096).expect("a small receive buffer");
        let stream = socket.connect(addr).await.expect("connecting to the gateway");
        let (ws, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.expect("the upgrade");
        Socket { ws }
    }

    /// Connects with a header token, a `?ticket=`, and an `Origin`, as given; the HTTP status on refusal.
    pub async fn try_connect(
        base: &str,
        token: Option<&str>,
        ticket: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Socket, u16> {
        let mut url = format!("{}/ws", base.replacen("http", "ws", 1));
        if let Some(ticket) = ticket {
            url.push_str(&format!("?ticket={ticket}"));
        }
        let mut request = url.into_client_request().expect("a WebSocket URL");
        if let Some(token) = token {
            request.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Token {token}")).unwrap());
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Socket { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("connecting the WebSocket: {e}"),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.expect("sending a frame");
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.expect("sending a frame");
    }

    /// The next JSON frame within `wait`, or `None` when none came (the socket stays usable).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("the socket ended while a frame was expected"),
                Ok(Some(message)) => message.expect("a readable frame"),
            };
            match message {
                Message::Text(text) => return Some(serde_json::from_str(&text).expect("a JSON frame")),
                Message::Close(close) => panic!("the socket closed while a frame was expected: {close:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame, within 10 s.
    pub async fn next(&mut self) -> Value {
        self.next_within(Duration::from_secs(10)).await.expect("a frame within 10 s")
    }

    /// The next frame of type `kind`, skipping others (presence, typing, ...), within 10 s.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_within(left).await.unwrap_or_else(|| panic!("no {kind} frame within 10 s"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads until the server closes, within `wait`; frames before the close are returned too.
    pub async fn closed_within(&mut self, wait: Duration) -> (Vec<Value>, Closed) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("the socket did not close within {wait:?} (frames: {frames:?})"),
                Ok(None) | Ok(Some(Err(_))) => return (frames, Closed::Dropped),
                Ok(Some(Ok(Message::Close(close)))) => {
                    let closed =
                        close.map_or(Closed::Dropped, |c| Closed::Code(u16::from(c.code), c.reason.to_string()));
                    return (frames, closed);
                }
                Ok(Some(Ok(Message::Text(text)))) => frames.push(serde_json::from_str(&text).expect("a JSON frame")),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next JSON frame, or how the socket closed.
    pub async fn closed_or_next(&mut self) -> Result<Value, Closed> {
        loop {
            match self.ws.next().await {
                None | Some(Err(_)) => return Err(Closed::Dropped),
                Some(Ok(Message::Close(close))) => {
                    return Err(
                        close.map_or(Closed::Dropped, |c| Closed::Code(u16::from(c.code), c.reason.to_string()))
                    );
                }
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).expect("a JSON frame")),
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// How a connection ended after the server's close frame.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpEnd {
    /// The server closed its side after the close handshake (FIN).
    Orderly,
    /// A reset: the server dropped the connection with bytes of ours unread, which can destroy
    /// its close frame before the client reads it.
    Reset,
}

/// A WebSocket client written against the bare TCP stream, for what the library hides: whether
/// the connection ends in order or with a reset after the close frame.
pub struct RawSocket {
    stream: TcpStream,
    read: Vec<u8>,
}

impl RawSocket {
    /// Upgrades `<base>/ws` with `Authorization: Token <token>`.
    pub async fn connect(base: &str, token: &str) -> RawSocket {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).await.expect("connecting to the gateway");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Token {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("sending the upgrade");
        let mut read = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("reading the upgrade answer");
            assert!(n > 0, "the gateway closed during the upgrade");
            read.extend_from_slice(&chunk[..n]);
            if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        assert!(read.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&read[..end]));
        read.drain(..end);
        RawSocket { stream, read }
    }

    /// Sends one text frame (masked, as from a client).
    pub async fn send(&mut self, frame: Value) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&client_frame(0x1, frame.to_string().as_bytes())).await.expect("sending a frame");
    }

    /// Reads frames until one of type `kind`, within 10 s.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            match self.next_frame(Duration::from_secs(10)).await {
                (0x1, payload) => {
                    let frame: Value = serde_json::from_slice(&payload).expect("a JSON frame");
                    if frame["type"] == kind {
                        return frame;
                    }
                }
                (0x8, _) => panic!("the socket closed while a {kind} frame was expected"),
                _ => {}
            }
        }
    }

    /// Reads frames until the server's close, within `wait`, and returns its code.
    pub async fn close_code(&mut self, wait: Duration) -> u16 {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let (0x8, payload) = self.next_frame(left).await {
                return payload.get(..2).map_or(1005, |code| u16::from_be_bytes([code[0], code[1]]));
            }
        }
    }

    /// The next frame's opcode and payload, within `wait`.
    async fn next_frame(&mut self, wait: Duration) -> (u8, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((opcode, payload, used)) = server_frame(&self.read) {
                self.read.drain(..used);
                return (opcode, payload);
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no frame within {wait:?}"))
                .expect("reading frames");
            assert!(n > 0, "the connection ended without a close frame");
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    /// Answers the close, as a client does, and reads to the end of the connection.
    pub async fn answer_close(mut self) -> TcpEnd {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.stream.write_all(&client_frame(0x8, &1000u16.to_be_bytes())).await.is_err() {
            return TcpEnd::Reset;
        }
        let mut chunk = [0u8; 65536];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await {
                Err(_) => panic!("the connection did not end within 5 s of the close"),
                Ok(Ok(0)) => return TcpEnd::Orderly,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return TcpEnd::Reset,
            }
        }
    }
}

/// A client frame: FIN, `opcode`, masked (with a zero key, which leaves the payload as it is).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// The first whole server frame in `bytes`: opcode, payload, bytes used.
fn server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let (len, header) = match second & 0x7f {
        126 => (u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    let payload = bytes.get(header..header + len)?;
    Some((first & 0x0f, payload.to_vec(), header + len))
}
