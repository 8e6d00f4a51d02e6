//! A minimal but real SMTP receiver (RFC 5321: greeting, EHLO/HELO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT) on a free local port, so the worker's lettre client talks
//! to a server over TCP exactly as it would to a relay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message data (headers and body), CRLF line ends, dots unstuffed.
    pub data: String,
}

impl Mail {
    /// A header's value (unfolded), case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut().filter(|_| line.starts_with([' ', '\t'])) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }
}

impl Mail {
    /// The decoded bodies by content type (`text/plain`, `text/html`): the parts of a
    /// multipart message, or the single body.
    pub fn bodies(&self) -> Vec<(String, String)> {
        let content_type = self.header("Content-Type").unwrap_or_default();
        match content_type.split("boundary=").nth(1) {
            Some(boundary) => {
                let boundary = format!("--{}", boundary.trim_matches('"'));
                self.data
                    .split(boundary.as_str())
                    .skip(1)
                    .filter(|part| !part.starts_with("--"))
                    .filter_map(|part| {
                        Mail { data: part.trim_start_matches("\r\n").to_owned(), ..self.clone() }.single()
                    })
                    .collect()
            }
            None => self.single().into_iter().collect(),
        }
    }

    /// The body of one part, by its Content-Type, with its transfer encoding undone.
    fn single(&self) -> Option<(String, String)> {
        let (_, body) = self.data.split_once("\r\n\r\n")?;
        let kind = self.header("Content-Type")?.split(';').next()?.trim().to_owned();
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        let body = match encoding.as_str() {
            "quoted-printable" => quoted_printable(body),
            "base64" => {
                use base64::Engine;
                let compact: String = body.split_whitespace().collect();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).ok()?).ok()?
            }
            _ => body.to_owned(),
        };
        Some((kind, body.replace("\r\n", "\n").trim_end().to_owned()))
    }
}

/// RFC 2045 quoted-printable: `=XX` bytes and `=` soft line breaks.
fn quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())) {
            (b'=', Ok(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct SmtpServer {
    pub port: u16,
    /// Messages still to refuse with a transient 451 after their data.
    refuse: Arc<AtomicU32>,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<Mail>>,
}

impl SmtpServer {
    pub async fn start() -> Arc<SmtpServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        let refuse = Arc::new(AtomicU32::new(0));
        let refusing = refuse.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, tx.clone(), refusing.clone()));
            }
        });
        Arc::new(SmtpServer { port, refuse, received: tokio::sync::Mutex::new(rx) })
    }

    /// Refuses the next `n` messages with `451` (try again later), as a busy relay does.
    pub fn refuse_next(&self, n: u32) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message received, within 20 s.
    pub async fn next(&self) -> Mail {
        let mut rx = self.received.lock().await;
        tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("an email within 20 s")
            .expect("the SMTP server runs")
    }

    /// Whether a message arrives within `wait`.
    pub async fn next_within(&self, wait: std::time::Duration) -> Option<Mail> {
        let mut rx = self.received.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }
}

async fn session(stream: TcpStream, tx: mpsc::UnboundedSender<Mail>, refuse: Arc<AtomicU32>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 localhost ESMTP test\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let verb = command.split(' ').next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                b"250 OK\r\n"
            }
            "MAIL" => {
                from = address(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                let _ = write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mail = Mail { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data };
                if refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    b"451 4.3.0 Try again later\r\n"
                } else {
                    let _ = tx.send(mail);
                    b"250 OK queued\r\n"
                }
            }
            "QUIT" => {
                let _ = write.write_all(b"221 Bye\r\n").await;
                return;
            }
            _ => b"502 Command not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// `MAIL FROM:<a@b> SIZE=…` → `a@b`.
fn address(command: &str) -> String {
    command.split('<').nth(1).and_then(|rest| rest.split('>').next()).unwrap_or_default().to_owned()
}
