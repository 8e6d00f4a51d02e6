//! Group commit of sends. Durability means the sender's answer follows the commit, and on
//! SQLite with `synchronous=FULL` each commit costs an fsync: one transaction per message would
//! cap throughput at the disk's fsync rate. So every send goes to one task that takes all sends
//! queued meanwhile (up to [`MAX_BATCH`]), stores them in one transaction and answers each after
//! the commit. Under load the queue fills while the previous commit is on disk, so batches grow
//! with the load and a lone send waits for nothing.
//!
//! A batch costs a fixed handful of round trips to the database whatever its size (see
//! `store::sends`): the senders' memberships and the conversations' last seqs in one look-up
//! (locked on MySQL), then the messages, the new last seqs and the log entries. Retries of earlier sends are rare, so the batch does not look for them
//! first: the unique (sender, client id) key refuses such an insert, and only then is the batch
//! run again with a look-up of the originals. The committer keeps one connection, so its SQLite
//! page cache stays warm, and runs on a thread of its own. The commit wakes the relay, since the
//! batch's events were recorded in it.
//!
//! A refused send (not a member, blocked by the other member of a direct conversation, unknown
//! `reply_to`) is refused before it writes anything and
//! does not disturb the batch. If the transaction itself fails (a lost unique-key race with
//! another replica, say), each send of the batch is retried alone, so one cannot sink the others.

use std::collections::HashMap;
use std::slice;
use std::time::Instant;

use anyhow::anyhow;
use soulchat_runtime::database::WriterConn;
use soulchat_runtime::{Context, Database, WriteTx, dedicated};
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::{ChatEvent, Message, MessageReply, SendRequest};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{ServiceError, metrics};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::access;
use crate::log;
use crate::store::{MessageRow, Store, reusable_chunks};

/// Sends per transaction at most: bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// Times a batch runs again after a deadlock (or once with the retries' look-up) at most.
const DEADLOCK_RETRIES: usize = 4;
/// Sends waiting for the committer at most; beyond it senders wait (and their deadline bounds it).
const QUEUE: usize = 8192;

/// A send's answer; an internal error carries its cause to the request's log line.
type Answer = soulchat_runtime::Result<MessageReply>;

struct Job {
    sender: String,
    request: SendRequest,
    /// The sending request's span, which its event's consumers continue.
    traceparent: Option<String>,
    answer: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the committing loop, on a thread of its own (every send waits for it). It runs
    /// until every request was answered ([`Context::drained`]), then commits what is still
    /// queued and ends.
    pub fn spawn(store: Store, ctx: &mut Context) -> std::io::Result<Committer> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let task = dedicated::spawn("chat-committer", run(store, queue, ctx.drained()))?;
        ctx.spawn_until_drained(task);
        Ok(Committer { jobs })
    }

    /// Stores the message (or finds the original of a retry) and answers after the commit.
    pub async fn send(&self, sender: String, request: SendRequest) -> Answer {
        let (answer, answered) = oneshot::channel();
        let traceparent = soulchat_subjects::trace::current();
        self.jobs.send(Job { sender, request, traceparent, answer }).await.map_err(|_| ServiceError::unavailable())?;
        answered.await.unwrap_or_else(|_| Err(ServiceError::unavailable().into()))
    }
}

async fn run(store: Store, mut queue: mpsc::Receiver<Job>, drained: CancellationToken) {
    let mut writer = Writer::default();
    loop {
        let first = tokio::select! {
            biased;
            job = queue.recv() => job,
            _ = drained.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        fill(&mut queue, &mut batch);
        if batch.len() < MAX_BATCH {
            // Senders that are ready to run but have not enqueued yet join this batch.
            tokio::task::yield_now().await;
            fill(&mut queue, &mut batch);
        }
        writer.commit(&store, batch).await;
    }
    queue.close();
    let mut rest = Vec::new();
    while let Some(job) = queue.recv().await {
        rest.push(job);
        if rest.len() == MAX_BATCH {
            writer.commit(&store, std::mem::take(&mut rest)).await;
        }
    }
    if !rest.is_empty() {
        writer.commit(&store, rest).await;
    }
}

fn fill(queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// The committer's own connection, kept across batches so that its page cache stays warm;
/// replaced after a failure, in case the connection is what failed.
#[derive(Default)]
struct Writer {
    conn: Option<WriterConn>,
}

impl Writer {
    async fn commit(&mut self, store: &Store, batch: Vec<Job>) {
        let started = Instant::now();
        match self.apply(store, &batch).await {
            Ok(answers) => {
                let stored = answers.iter().filter(|a| a.as_ref().is_ok_and(|reply| !reply.duplicate)).count();
                metrics::chat_committed(batch.len(), stored, started.elapsed());
                finish(batch, answers)
            }
            Err(e) if batch.len() > 1 => {
                tracing::warn!(sends = batch.len(), "group commit failed, retrying each send alone: {e}");
                for job in batch {
                    let answer = match self.apply(store, slice::from_ref(&job)).await {
                        Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(anyhow!("a send had no answer").into())),
                        Err(e) => Err(e.into()),
                    };
                    finish(vec![job], vec![answer]);
                }
            }
            Err(e) => finish(batch, vec![Err(e.into())]),
        }
    }

    async fn apply(&mut self, store: &Store, jobs: &[Job]) -> sqlx::Result<Vec<Answer>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(store.db().writer_conn().await?),
        };
        let mut result = apply(store, conn, jobs, false).await;
        // Replicas lock overlapping conversations in their own orders; MySQL breaks such a
        // deadlock by rolling one batch back, which then simply runs again.
        for _ in 0..DEADLOCK_RETRIES {
            let retries = match &result {
                Err(e) if Database::is_unique_violation(e) => true,
                Err(e) if Database::is_deadlock(e) => false,
                _ => break,
            };
            result = apply(store, conn, jobs, retries).await;
        }
        if result.as_ref().is_err_and(|e| !Database::is_unique_violation(e)) {
            self.conn = None;
        }
        result
    }
}

fn finish(batch: Vec<Job>, answers: Vec<Answer>) {
    for (job, answer) in batch.into_iter().zip(answers) {
        let _ = job.answer.send(answer); // a sender that gave up still has its message stored
    }
}

/// What a batch has taken so far, so that each send costs a lookup or two and the writes go
/// out as one statement per table at the end.
#[derive(Default)]
struct Batch {
    messages: Vec<Message>,
    events: Vec<ChatEvent>,
    /// Beside each event, its send's trace context.
    traceparents: Vec<Option<String>>,
    /// Conversation -> the last seq taken (read before the batch, raised by each message).
    seqs: HashMap<String, i64>,
    /// Conversations whose last seq this batch raised.
    raised: Vec<String>,
    /// (conversation, sender) pairs that are memberships.
    members: std::collections::HashSet<(String, String)>,
    /// (conversation, sender) pairs of direct conversations where the other member blocks the sender.
    blocked: std::collections::HashSet<(String, String)>,
    /// (sender, client id) -> index in `messages`: a retry inside the same batch.
    clients: HashMap<(String, String), usize>,
    /// (sender, client id) -> the message stored before: a retry of an earlier send.
    stored: HashMap<(String, String), MessageRow>,
}

/// One transaction for the whole batch; a refused send is an `Err` answer, not a failure.
/// Unless `retries` says the batch may hold retries of earlier sends, it does not look for
/// them: the unique (sender, client id) key refuses a retry's insert, and the caller runs the
/// batch again with `retries`.
async fn apply(store: &Store, conn: &mut WriterConn, jobs: &[Job], retries: bool) -> sqlx::Result<Vec<Answer>> {
    let mut tx = store.db().begin_on(conn).await?;
    let mut batch = Batch::default();
    if retries {
        let pairs: Vec<(&str, &str)> = jobs.iter().map(|j| (j.sender.as_str(), j.request.client_id.as_str())).collect();
        for chunk in reusable_chunks(&pairs) {
            for original in Store::messages_by_clients(&mut tx, chunk).await? {
                batch.stored.insert((original.sender_id.clone(), original.client_id.clone()), original);
            }
        }
    }
    let mut senders: Vec<(&str, &str)> =
        jobs.iter().map(|j| (j.request.conversation_id.as_str(), j.sender.as_str())).collect();
    senders.sort_unstable();
    senders.dedup();
    for chunk in reusable_chunks(&senders) {
        let context = store.send_context(&mut tx, chunk).await?;
        batch.seqs.extend(context.seqs);
        batch.members.extend(context.members);
        batch.blocked.extend(context.blocked);
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        answers.push(take(&mut tx, &mut batch, job).await?);
    }
    let raised: Vec<(&str, i64)> = batch.raised.iter().map(|c| (c.as_str(), batch.seqs[c])).collect();
    store.write_sends(&mut tx, &batch.messages, &batch.events, &batch.traceparents, &raised).await?;
    tx.commit().await?;
    Ok(answers)
}

async fn take(tx: &mut WriteTx<'_>, batch: &mut Batch, job: &Job) -> sqlx::Result<Answer> {
    let (sender, req) = (job.sender.as_str(), &job.request);
    let client = (sender.to_owned(), req.client_id.clone());
    // A retry is answered with the original; a client id is a sender's, across conversations, so
    // one reused elsewhere is refused rather than answered with another conversation's message.
    let reused = || ServiceError::conflict("client_id", "is already used for a message in another conversation");
    if let Some(&i) = batch.clients.get(&client) {
        let original = &batch.messages[i];
        if original.conversation_id != req.conversation_id {
            return Ok(Err(reused().into()));
        }
        return Ok(Ok(MessageReply { message: Some(original.clone()), duplicate: true }));
    }
    if let Some(original) = batch.stored.get(&client) {
        if original.conversation_id != req.conversation_id {
            return Ok(Err(reused().into()));
        }
        return Ok(Ok(MessageReply { message: Some(original.to_proto()), duplicate: true }));
    }
    let conversation_id = &req.conversation_id;
    let membership = (conversation_id.clone(), sender.to_owned());
    if !batch.members.contains(&membership) {
        return Ok(Err(access::not_found().into()));
    }
    if batch.blocked.contains(&membership) {
        return Ok(Err(access::blocked().into()));
    }
    if let Some(reply_to) = req.reply_to {
        let in_batch = batch.messages.iter().any(|m| m.conversation_id == *conversation_id && m.seq == reply_to);
        if !in_batch && Store::message(tx, conversation_id, reply_to).await?.is_none() {
            return Ok(Err(ServiceError::invalid("reply_to", "is not a message of this conversation").into()));
        }
    }
    // A thread reply's root: a live message here that is no reply itself. Its participants go
    // with the event (for notifications), so they are looked up now, for thread replies only.
    let mut participants = Vec::new();
    if let Some(root) = req.thread_root {
        let problem = match Store::message(tx, conversation_id, root).await? {
            None => Some("is not a message of this conversation"),
            Some(m) if m.deleted != 0 => Some("is deleted"),
            Some(m) if m.thread_root.is_some() => Some("is itself a thread reply"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Ok(Err(ServiceError::invalid("thread_root", problem).into()));
        }
        participants = Store::thread_participants(tx, conversation_id, root).await?;
        let earlier =
            batch.messages.iter().filter(|m| m.conversation_id == *conversation_id && m.thread_root == Some(root));
        participants.extend(earlier.map(|m| m.sender_id.clone()));
        participants.sort_unstable();
        participants.dedup();
    }
    // A deleted conversation has no last seq here.
    let Some(last) = batch.seqs.get_mut(conversation_id) else {
        return Ok(Err(access::not_found().into()));
    };
    *last += 1;
    let seq = *last;
    if !batch.raised.contains(conversation_id) {
        batch.raised.push(conversation_id.clone());
    }
    let message = Message {
        conversation_id: conversation_id.clone(),
        seq,
        sender_id: sender.to_owned(),
        client_id: req.client_id.clone(),
        kind: req.kind.clone(),
        content: req.content.clone(),
        reply_to: req.reply_to,
        url: req.url.clone(),
        created_at_ms: now_ms(),
        edited_at_ms: None,
        deleted: false,
        metadata: req.metadata.clone(),
        attachment_id: req.attachment_id.clone(),
        reactions: Vec::new(),
        mention_ids: req.mention_ids.clone(),
        thread_root: req.thread_root,
        thread: None,
    };
    let mut event = log::event(conversation_id, seq, sender, Event::MessageCreated(message.clone()));
    event.thread_participant_ids = participants;
    batch.events.push(event);
    batch.traceparents.push(job.traceparent.clone());
    batch.clients.insert(client, batch.messages.len());
    batch.messages.push(message.clone());
    Ok(Ok(MessageReply { message: Some(message), duplicate: false }))
}
