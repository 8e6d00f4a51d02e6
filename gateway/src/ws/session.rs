//! One WebSocket session: reads client frames and answers them, and writes what the hub queues
//! for it, keeping per-conversation `seq` cursors so that every event reaches the client once
//! and in order. A gap it cannot explain, a full queue, or a lost NATS connection closes the
//! socket with 4000 (the client resumes); an expired or revoked token closes it with 4401.
//!
//! Frames are handled one at a time: a `send` is acknowledged before the next frame is read,
//! and the live copy of the client's own message is recognised by its seq and not echoed back.
//! Until the client's first frame (or [`SYNC_WAIT`]), conversation events are held back, so that
//! a client that opens with `resume` gets its replay before any live event.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::StreamExt;
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::metrics;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{CallContext, ServiceError};
use tracing::Instrument;

use crate::auth::AuthUser;
use crate::extract::MAX_BODY_BYTES;
use crate::live;
use crate::state::AppState;
use crate::views::chat::{MessageView, SendBody};
use crate::views::frames::{self, ClientFrame};
use crate::ws::registry::Outbound;

/// Close codes of the WebSocket API.
const CLOSE_RESUME: u16 = 4000;
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// RFC 6455 "message too big".
const CLOSE_TOO_BIG: u16 = 1009;
const TOO_BIG: &str = "frame too large (maximum is 65536 bytes)";
const _: () = assert!(MAX_BODY_BYTES == 65536, "TOO_BIG names the limit");
/// A client that does not take a frame within this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may take; a client that cannot take it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long conversation events wait for a client's opening `resume`.
const SYNC_WAIT: Duration = Duration::from_millis(500);
/// At most one typing notice per conversation and socket in this long.
const TYPING_EVERY: Duration = Duration::from_secs(2);

struct Session {
    state: AppState,
    auth: AuthUser,
    socket: WebSocket,
    /// The last seq delivered per conversation.
    cursors: HashMap<String, i64>,
    /// Seqs of this socket's own sends, acknowledged already, not to be echoed.
    own: HashSet<(String, i64)>,
    typed: HashMap<String, Instant>,
    /// Conversation events held back until the client's opening frame; `None` once synced.
    held: Option<Vec<Outbound>>,
    /// Cancelled by the hub when this socket's queue overflows.
    too_slow: tokio_util::sync::CancellationToken,
}

/// Why a session ended, and so how the socket closes.
enum End {
    Client,
    Close(u16, &'static str),
}

pub async fn run(socket: WebSocket, state: AppState, auth: AuthUser) {
    let user_id = auth.id().to_owned();
    let mut registration = Box::pin(state.hub.register(&user_id)).await;
    metrics::ws_opened();
    let expires =
        tokio::time::Instant::now() + Duration::from_secs(auth.claims.exp.saturating_sub(now_ms() as u64 / 1000));
    let mut session = Session {
        state,
        auth,
        socket,
        cursors: HashMap::new(),
        own: HashSet::new(),
        typed: HashMap::new(),
        held: Some(Vec::new()),
        too_slow: registration.too_slow.clone(),
    };
    let sync_by = tokio::time::sleep(SYNC_WAIT);
    tokio::pin!(sync_by);
    for frame in Box::pin(session.state.hub.presence_snapshot(&user_id)).await {
        if session.write("presence", frame).await.is_err() {
            break;
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let disruptions = session.state.hub.disruptions();

    let end = loop {
        tokio::select! {
            biased;
            _ = registration.too_slow.cancelled() => break End::Close(CLOSE_RESUME, "too slow: resume"),
            _ = session.state.shutdown.cancelled() => break End::Close(1001, "server shutting down"),
            _ = tokio::time::sleep_until(expires) => break End::Close(CLOSE_UNAUTHORIZED, "token expired"),
            _ = &mut sync_by, if session.held.is_some() => {
                if let Err(end) = Box::pin(session.sync()).await {
                    break end;
                }
            }
            _ = tick.tick() => {
                if session.state.auth.is_revoked(&session.auth.claims) {
                    break End::Close(CLOSE_UNAUTHORIZED, "token revoked");
                }
                // Live frames sent while the connection was down, or dropped as a slow consumer,
                // are gone: have the client resume.
                if session.state.hub.disruptions() != disruptions {
                    break End::Close(CLOSE_RESUME, "connection disrupted: resume");
                }
            }
            outbound = registration.queue.recv() => match outbound {
                Some(outbound) => {
                    if let Err(end) = session.deliver(outbound).await {
                        break end;
                    }
                }
                None => break End::Close(CLOSE_RESUME, "hub closed"),
            },
            incoming = session.socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // Boxed: answering a frame awaits calls to workers, whose futures are large;
                    // inline they would make every idle socket's task as large as the largest.
                    if let Err(end) = Box::pin(session.handle(text.as_bytes())).await {
                        break end;
                    }
                }
                Some(Ok(Message::Binary(bytes))) if bytes.len() > MAX_BODY_BYTES => break End::Close(CLOSE_TOO_BIG, TOO_BIG),
                Some(Ok(Message::Binary(_))) => {
                    metrics::ws_frame_received("binary");
                    let e = ServiceError::bad_request("frame", "must be JSON text");
                    if let Err(end) = session.write("error", frames::error(&e, None)).await {
                        break end;
                    }
                }
                // The client's close is answered with its own code, completing the handshake.
                Some(Ok(Message::Close(frame))) => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.socket.send(Message::Close(frame))).await;
                    break End::Client;
                }
                Some(Err(e)) if too_big(&e) => break End::Close(CLOSE_TOO_BIG, TOO_BIG),
                None | Some(Err(_)) => break End::Client,
                Some(Ok(_)) => {} // ping and pong are answered by the WebSocket layer
            },
        }
    };
    let closed = match end {
        End::Close(code, reason) => {
            let close = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.socket.send(close)).await;
            Some(code)
        }
        End::Client => None,
    };
    Box::pin(session.state.hub.unregister(&user_id, registration.id)).await;
    metrics::ws_closed(closed);
}

/// Whether the WebSocket layer refused a frame over its size limit.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    let cause = e.source().and_then(|cause| cause.downcast_ref::<Error>());
    matches!(cause, Some(Error::Capacity(CapacityError::MessageTooLong { .. })))
}

impl Session {
    fn ctx(&self) -> CallContext {
        CallContext::internal().with_user(self.auth.id())
    }

    /// Writes a frame of type `kind` (for the metrics; `live` for frames the hub relays).
    async fn write(&mut self, kind: &'static str, frame: Bytes) -> Result<(), End> {
        metrics::ws_frame_sent(kind);
        let text = Utf8Bytes::try_from(frame).map_err(|_| End::Close(1011, "internal error"))?;
        // A client that stopped reading must not hold this session: the hub's overflow ends it.
        tokio::select! {
            sent = tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(Message::Text(text))) => match sent {
                Ok(Ok(())) => Ok(()),
                _ => Err(End::Client),
            },
            _ = self.too_slow.cancelled() => Err(End::Close(CLOSE_RESUME, "too slow: resume")),
        }
    }

    /// Ends the hold: the held conversation events go out, in order, without what a resume sent.
    async fn sync(&mut self) -> Result<(), End> {
        for outbound in self.held.take().unwrap_or_default() {
            self.deliver(outbound).await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, outbound: Outbound) -> Result<(), End> {
        if let (Some(held), Outbound::Chat(_)) = (&mut self.held, &outbound) {
            if held.len() < self.state.hub.queue() {
                held.push(outbound);
                return Ok(());
            }
            // A client that has not resumed by now gets live events from here on.
            Box::pin(self.sync()).await?;
        }
        let chat = match outbound {
            Outbound::Frame(frame) => return self.write("live", Bytes::clone(&frame)).await,
            Outbound::Chat(chat) => chat,
        };
        let (key, seq) = (chat.conversation_id.clone(), chat.seq);
        let last = self.cursors.get(&key).copied();
        match last {
            Some(last) if seq <= last => return Ok(()), // seen already (resume overlap, redelivery)
            Some(last) if seq > last + 1 => return Err(End::Close(CLOSE_RESUME, "missed events: resume")),
            _ => {}
        }
        if !self.own.remove(&(key.clone(), seq)) {
            self.write("event", chat.frame.clone()).await?;
        }
        match chat.ends_membership_of.as_deref() {
            Some(user) if user == "*" || user == self.auth.id() => {
                self.cursors.remove(&key);
            }
            _ => {
                self.cursors.insert(key, seq);
            }
        }
        Ok(())
    }

    async fn handle(&mut self, text: &[u8]) -> Result<(), End> {
        if text.len() > MAX_BODY_BYTES {
            return Err(End::Close(CLOSE_TOO_BIG, TOO_BIG));
        }
        let frame: ClientFrame = match crate::extract::parse(text) {
            Ok(frame) => frame,
            Err(e) => {
                metrics::ws_frame_received("invalid");
                return self.write("error", frames::error(&e, None)).await;
            }
        };
        metrics::ws_frame_received(match &frame {
            ClientFrame::Send { .. } => "send",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Resume { .. } => "resume",
            ClientFrame::Ping => "ping",
        });
        if self.held.is_some() {
            if let ClientFrame::Resume { conversations } = frame {
                self.resume(conversations).await?;
                return self.sync().await;
            }
            self.sync().await?;
        }
        match frame {
            ClientFrame::Ping => self.write("pong", frames::pong()).await,
            ClientFrame::Send { conversation_id, body } => {
                let client_id = body.client_id.clone();
                match self.send(conversation_id, body).instrument(crate::trace::frame_span("send")).await {
                    Ok(frame) => self.write("ack", frame).await,
                    Err(e) => self.write("error", frames::error(&e, Some(&client_id))).await,
                }
            }
            ClientFrame::Typing { conversation_id } => match self.typing(conversation_id).await {
                Ok(()) => Ok(()),
                Err(e) => self.write("error", frames::error(&e, None)).await,
            },
            ClientFrame::Read { conversation_id, seq } => {
                match self.state.chat.mark_read(&self.ctx(), conversation_id, seq).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.write("error", frames::error(&e, None)).await,
                }
            }
            ClientFrame::Resume { conversations } => self.resume(conversations).await,
        }
    }

    /// Sends a message and answers with its `ack`; the live copy of it is then skipped here.
    async fn send(&mut self, conversation_id: String, body: SendBody) -> Result<Bytes, ServiceError> {
        let client_id = body.client_id.clone();
        let reply = self.state.chat.send(self.auth.id(), &self.ctx(), conversation_id, body).await?;
        let message = reply.message.ok_or_else(ServiceError::internal)?;
        if !reply.duplicate {
            let delivered = self.cursors.get(&message.conversation_id).is_some_and(|c| *c >= message.seq);
            if !delivered {
                self.own.insert((message.conversation_id.clone(), message.seq));
            }
        }
        let names = self.state.hub.names().names(&self.state.caller, vec![message.sender_id.clone()]).await?;
        Ok(frames::ack(&client_id, MessageView::new(message, &names)))
    }

    /// Tells the conversation's other members, at most every [`TYPING_EVERY`].
    async fn typing(&mut self, conversation_id: String) -> Result<(), ServiceError> {
        let now = Instant::now();
        if self.typed.get(&conversation_id).is_some_and(|at| now.duration_since(*at) < TYPING_EVERY) {
            return Ok(());
        }
        self.typed.insert(conversation_id.clone(), now);
        let request = cm::GetRequest { conversation_id: conversation_id.clone() };
        let conversation =
            self.state.caller.call::<chat::Get>(&self.ctx(), &request).await?.conversation.unwrap_or_default();
        let me = self.auth.id().to_owned();
        let names = self.state.hub.names().names(&self.state.caller, vec![me.clone()]).await?;
        let frame = frames::typing(&conversation_id, &names.get(&me).unwrap_or_default());
        let others: Vec<String> = conversation.members.into_iter().map(|m| m.user_id).filter(|id| *id != me).collect();
        live::publish(self.state.caller.client(), &others, frame).await;
        Ok(())
    }

    /// Replays what the client missed, per conversation and in order, then says `resumed`.
    async fn resume(&mut self, conversations: HashMap<String, i64>) -> Result<(), End> {
        metrics::ws_resumed();
        let request = cm::ResumeRequest { conversations: conversations.clone() };
        let reply = match self.state.caller.call::<chat::Resume>(&self.ctx(), &request).await {
            Ok(reply) => reply,
            Err(e) => return self.write("error", frames::error(&e.into(), None)).await,
        };
        // What this socket already delivered stays delivered: replay only what lies beyond.
        for (conversation_id, seq) in conversations {
            let cursor = self.cursors.entry(conversation_id).or_insert(seq);
            *cursor = (*cursor).max(seq);
        }
        for gone in &reply.gone {
            self.cursors.remove(gone);
        }
        let mut ids = Vec::new();
        for c in &reply.conversations {
            for e in &c.events {
                ids.extend(frames::user_ids(e));
            }
        }
        let names = match self.state.hub.names().names(&self.state.caller, ids).await {
            Ok(names) => names,
            Err(e) => return self.write("error", frames::error(&e, None)).await,
        };
        for resumed in reply.conversations {
            if resumed.truncated {
                self.write("resume_truncated", frames::resume_truncated(&resumed.conversation_id, resumed.from_seq))
                    .await?;
            }
            let mut cursor = self.cursors.get(&resumed.conversation_id).copied().unwrap_or(0);
            if resumed.truncated {
                // What lies before `from_seq` comes from history, not from this socket.
                cursor = cursor.max(resumed.from_seq - 1);
            }
            for event in resumed.events {
                if event.seq <= cursor {
                    continue;
                }
                cursor = event.seq;
                self.write("event", frames::chat_event(event, &names)).await?;
            }
            self.cursors.insert(resumed.conversation_id, cursor);
        }
        self.write("resumed", frames::resumed()).await
    }
}
