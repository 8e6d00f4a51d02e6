//! One WebSocket session: reads client frames and answers them, and writes what the hub queues
//! for it, keeping per-conversation `seq` cursors so that every event reaches the client once
//! and in order. A gap it cannot explain, a full queue, or a lost NATS connection closes the
//! socket with 4000 (the client resumes); an expired or revoked token closes it with 4401.
//!
//! Calls (`send`, `read`, `typing`) run concurrently, up to [`MAX_IN_FLIGHT`] per socket, and
//! are answered as each completes, a send's `ack` or `error` by its `client_id`: a call stuck
//! behind a slow worker holds up nothing else. A conversation's sends go one at a time, in the
//! order the client sent them, so their seqs keep that order; different conversations proceed in
//! parallel. At the bound the session reads no further frame until a call completes. `ping` is
//! answered at once; `resume` is answered inline, as it moves the cursors.
//!
//! The live copy of the client's own message is not echoed back: it is recognised by its seq
//! once the send is acknowledged, and, when it arrives first, by its sender and `client_id` as
//! the send in flight to its conversation; then the `ack` alone carries it.
//!
//! Calls in flight end with the session. A send whose request went out is stored all the same;
//! the client, without its `ack`, sends it again under the same `client_id` and gets it
//! acknowledged as the duplicate it is.
//!
//! Until the client's first frame (or [`SYNC_WAIT`]), conversation events are held back, so that
//! a client that opens with `resume` gets its replay before any live event.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::metrics;
use soulchat_subjects::profile::{self, messages::BlockedAmongRequest};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{CallContext, ServiceError};
use tracing::Instrument;

use crate::auth::AuthUser;
use crate::extract::MAX_BODY_BYTES;
use crate::live;
use crate::state::AppState;
use crate::views::chat::{MessageView, SendBody};
use crate::views::frames::{self, ClientFrame};
use crate::ws::registry::{ChatFrame, Outbound};

/// Close codes of the WebSocket API.
const CLOSE_RESUME: u16 = 4000;
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// RFC 6455 "message too big".
const CLOSE_TOO_BIG: u16 = 1009;
const TOO_BIG: &str = "frame too large (maximum is 65536 bytes)";
const _: () = assert!(MAX_BODY_BYTES == 65536, "TOO_BIG names the limit");
/// A client that does not take a frame within this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a close may take (our close frame out, the client's back); then the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long conversation events wait for a client's opening `resume`.
const SYNC_WAIT: Duration = Duration::from_millis(500);
/// Hub frames written per system call at most.
const WRITE_BATCH: usize = 64;
/// At most one typing notice per conversation and socket in this long.
const TYPING_EVERY: Duration = Duration::from_secs(2);
/// Calls a socket keeps in flight, sends waiting for their conversation's turn included: enough
/// for a client to keep a pipe full, few enough that a flood waits in the client's own socket.
const MAX_IN_FLIGHT: usize = 32;

struct Session {
    state: AppState,
    auth: AuthUser,
    socket: WebSocket,
    /// The last seq delivered per conversation.
    cursors: HashMap<String, i64>,
    /// Seqs of this socket's own sends, acknowledged already, not to be echoed.
    own: HashSet<(String, i64)>,
    typed: HashMap<String, Instant>,
    /// Calls in flight, answered in the order they complete.
    calls: FuturesUnordered<BoxFuture<'static, Done>>,
    /// The conversations this socket has sends in flight to, by the id the client gave.
    lanes: HashMap<String, Lane>,
    /// Conversation events held back until the client's opening frame; `None` once synced.
    held: Option<Vec<Outbound>>,
    /// Whether writes wait for a [`Session::flush`] (see [`Session::deliver_queued`]).
    batching: bool,
    /// Cancelled by the hub when this socket's queue overflows.
    too_slow: tokio_util::sync::CancellationToken,
}

/// A conversation's sends from this socket: one in flight, later ones waiting behind it.
#[derive(Default)]
struct Lane {
    /// The `client_id` of the send in flight.
    client_id: String,
    /// Its live copy, when that came before the answer. Not echoed, but kept: should the send
    /// still fail (the answer lost, the message stored), the client gets the message this way.
    echo: Option<Bytes>,
    waiting: VecDeque<SendBody>,
}

/// What a completed call leaves to answer.
enum Done {
    /// A send's answer; its conversation's next send may start.
    Send { conversation_id: String, client_id: String, sent: Result<Sent, ServiceError> },
    /// A `read` or `typing`: only a failure is answered.
    Quiet(Result<(), ServiceError>),
}

/// A stored message: its `ack`, and its place, which the echo rule needs.
struct Sent {
    conversation_id: String,
    seq: i64,
    duplicate: bool,
    ack: Bytes,
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
        calls: FuturesUnordered::new(),
        lanes: HashMap::new(),
        held: Some(Vec::new()),
        batching: false,
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
                    if let Err(end) = session.deliver_queued(outbound, &mut registration.queue).await {
                        break end;
                    }
                }
                None => break End::Close(CLOSE_RESUME, "hub closed"),
            },
            Some(done) = session.calls.next(), if !session.calls.is_empty() => {
                if let Err(end) = session.answer(done).await {
                    break end;
                }
            }
            incoming = session.socket.next(), if session.in_flight() < MAX_IN_FLIGHT => match incoming {
                Some(Ok(Message::Text(text))) => {
                    // Boxed: a `resume` awaits calls to workers, whose futures are large; inline
                    // they would make every idle socket's task as large as the largest.
                    if let Err(end) = Box::pin(session.handle(text.as_bytes())).await {
                        break end;
                    }
                    if session.in_flight() == MAX_IN_FLIGHT {
                        metrics::ws_calls_full();
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
            close_gracefully(&mut session.socket, code, reason).await;
            Some(code)
        }
        End::Client => None,
    };
    Box::pin(session.state.hub.unregister(&user_id, registration.id)).await;
    metrics::ws_closed(closed);
}

/// Sends the close frame, then reads (and drops) what the client sent before it saw it, until its
/// own close or [`CLOSE_TIMEOUT`]. Dropping the connection with unread bytes in the kernel's
/// buffer makes it send a reset, which can reach the client before the close frame: it would see
/// 1006 instead of the code that tells it what to do (4000: resume).
async fn close_gracefully(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let close = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    let linger = async {
        if socket.send(close).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, linger).await;
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

    /// Writes a frame of type `kind` (for the metrics; `live` for frames the hub relays), and
    /// sends it at once unless `batching`.
    async fn write(&mut self, kind: &'static str, frame: Bytes) -> Result<(), End> {
        metrics::ws_frame_sent(kind);
        let text = Utf8Bytes::try_from(frame).map_err(|_| End::Close(1011, "internal error"))?;
        let message = Message::Text(text);
        if self.batching {
            let written = self.socket.feed(message);
            return Self::bounded(&self.too_slow, written).await;
        }
        Self::bounded(&self.too_slow, self.socket.send(message)).await
    }

    /// Sends what `batching` left written but not sent.
    async fn flush(&mut self) -> Result<(), End> {
        Self::bounded(&self.too_slow, self.socket.flush()).await
    }

    /// A write that a client which stopped reading cannot make hold this session: it times out,
    /// or the hub's overflow ends it.
    async fn bounded(
        too_slow: &tokio_util::sync::CancellationToken,
        write: impl Future<Output = Result<(), axum::Error>>,
    ) -> Result<(), End> {
        tokio::select! {
            sent = tokio::time::timeout(WRITE_TIMEOUT, write) => match sent {
                Ok(Ok(())) => Ok(()),
                _ => Err(End::Client),
            },
            _ = too_slow.cancelled() => Err(End::Close(CLOSE_RESUME, "too slow: resume")),
        }
    }

    /// Delivers `first` and whatever else the hub has queued by now (up to [`WRITE_BATCH`]),
    /// then sends them together: in a busy group, one system call for many frames.
    async fn deliver_queued(
        &mut self,
        first: Outbound,
        queue: &mut tokio::sync::mpsc::Receiver<Outbound>,
    ) -> Result<(), End> {
        self.batching = true;
        let mut delivered = self.deliver(first).await;
        for _ in 1..WRITE_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            if delivered.is_err() {
                break;
            }
            delivered = self.deliver(next).await;
        }
        self.batching = false;
        delivered?;
        self.flush().await
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
        if !self.own.remove(&(key.clone(), seq)) && !self.holds_echo(&chat) {
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
            ClientFrame::Ping => return self.write("pong", frames::pong()).await,
            ClientFrame::Send { conversation_id, body } => match self.lanes.get_mut(&conversation_id) {
                Some(lane) => lane.waiting.push_back(body),
                None => self.start_send(conversation_id, body),
            },
            ClientFrame::Typing { conversation_id } => self.typing(conversation_id),
            // Receipts need no order here: the worker keeps a member's highest.
            ClientFrame::Read { conversation_id, seq } => {
                let (state, ctx) = (self.state.clone(), self.ctx());
                self.calls
                    .push(Box::pin(async move { Done::Quiet(state.chat.mark_read(&ctx, conversation_id, seq).await) }));
            }
            ClientFrame::Resume { conversations } => return self.resume(conversations).await,
        }
        Ok(())
    }

    /// Calls in flight, and sends waiting for their conversation's turn.
    fn in_flight(&self) -> usize {
        self.calls.len() + self.lanes.values().map(|lane| lane.waiting.len()).sum::<usize>()
    }

    /// Starts a send: the one in flight to its conversation from this socket.
    fn start_send(&mut self, conversation_id: String, body: SendBody) {
        let (state, ctx, sender) = (self.state.clone(), self.ctx(), self.auth.id().to_owned());
        let client_id = body.client_id.clone();
        self.lanes.entry(conversation_id.clone()).or_default().client_id = client_id.clone();
        self.calls.push(Box::pin(async move {
            let sent = send(state, ctx, sender, conversation_id.clone(), body)
                .instrument(crate::trace::frame_span("send"))
                .await;
            Done::Send { conversation_id, client_id, sent }
        }));
    }

    /// Answers a completed call; a send makes way for its conversation's next.
    async fn answer(&mut self, done: Done) -> Result<(), End> {
        let (conversation_id, client_id, sent) = match done {
            Done::Send { conversation_id, client_id, sent } => (conversation_id, client_id, sent),
            Done::Quiet(Ok(())) => return Ok(()),
            Done::Quiet(Err(e)) => return self.write("error", frames::error(&e, None)).await,
        };
        let Lane { echo, mut waiting, .. } = self.lanes.remove(&conversation_id).unwrap_or_default();
        if let Some(next) = waiting.pop_front() {
            self.lanes.insert(conversation_id.clone(), Lane { waiting, ..Lane::default() });
            self.start_send(conversation_id, next);
        }
        match sent {
            Ok(sent) => {
                // Its live copy, unless delivered (held as the echo) already, is not to be echoed.
                let delivered = self.cursors.get(&sent.conversation_id).is_some_and(|c| *c >= sent.seq);
                if !sent.duplicate && !delivered {
                    self.own.insert((sent.conversation_id, sent.seq));
                }
                self.write("ack", sent.ack).await
            }
            Err(e) => {
                self.write("error", frames::error(&e, Some(&client_id))).await?;
                match echo {
                    Some(frame) => self.write("event", frame).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Whether `chat` is the live copy of the send in flight to its conversation from here,
    /// arrived before the answer: it is kept back, as the `ack` will carry it.
    fn holds_echo(&mut self, chat: &ChatFrame) -> bool {
        let Some((sender, client_id)) = &chat.sent_as else { return false };
        match self.lanes.get_mut(&chat.conversation_id) {
            Some(lane) if sender == self.auth.id() && *client_id == lane.client_id => {
                lane.echo = Some(chat.frame.clone());
                true
            }
            _ => false,
        }
    }

    /// Tells the conversation's other members, at most every [`TYPING_EVERY`].
    fn typing(&mut self, conversation_id: String) {
        let now = Instant::now();
        if self.typed.get(&conversation_id).is_some_and(|at| now.duration_since(*at) < TYPING_EVERY) {
            return;
        }
        self.typed.insert(conversation_id.clone(), now);
        let (state, ctx, me) = (self.state.clone(), self.ctx(), self.auth.id().to_owned());
        self.calls.push(Box::pin(async move { Done::Quiet(typing(state, ctx, me, conversation_id).await) }));
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

/// Sends a message; the answer is its `ack`.
async fn send(
    state: AppState,
    ctx: CallContext,
    sender: String,
    conversation_id: String,
    body: SendBody,
) -> Result<Sent, ServiceError> {
    let client_id = body.client_id.clone();
    let reply = state.chat.send(&sender, &ctx, conversation_id, body).await?;
    let message = reply.message.ok_or_else(ServiceError::internal)?;
    let names =
        state.hub.names().names(&state.caller, MessageView::user_ids(&message).map(str::to_owned).collect()).await?;
    let (conversation_id, seq) = (message.conversation_id.clone(), message.seq);
    let ack = frames::ack(&client_id, MessageView::new(message, &names));
    Ok(Sent { conversation_id, seq, duplicate: reply.duplicate, ack })
}

async fn typing(state: AppState, ctx: CallContext, me: String, conversation_id: String) -> Result<(), ServiceError> {
    let request = cm::GetRequest { conversation_id: conversation_id.clone() };
    let conversation = state.caller.call::<chat::Get>(&ctx, &request).await?.conversation.unwrap_or_default();
    let names = state.hub.names().names(&state.caller, vec![me.clone()]).await?;
    let frame = frames::typing(&conversation_id, &names.get(&me).unwrap_or_default());
    let mut others: Vec<String> = conversation.members.into_iter().map(|m| m.user_id).filter(|id| *id != me).collect();
    // Blocks hide typing both ways, as they hide presence (the chat worker's contacts).
    let request = BlockedAmongRequest { user_id: me, among: others.clone() };
    let blocks = state.caller.call::<profile::BlockedAmong>(&ctx, &request).await?;
    others.retain(|u| !blocks.blocked.contains(u) && !blocks.blocked_by.contains(u));
    live::publish(state.caller.client(), &others, frame).await;
    Ok(())
}
