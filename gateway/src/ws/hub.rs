//! The session hub: which sockets this gateway holds for which users, and the two feeds that
//! reach them.
//!
//! - Committed conversation events come from the `SOULCHAT_CHAT` stream through one ordered
//!   consumer per gateway (JetStream redelivers from the last stream sequence seen after a
//!   reconnect or a gap, so nothing committed is lost in flight). Each event is rendered once
//!   and queued to every local socket of its recipients.
//! - Everything else that is live but not ordered (read receipts, typing, presence,
//!   notifications) arrives as ready frames on core NATS `soulchat.deliver.<user_id>`, one
//!   subscription per user held here; any gateway or worker may publish there. Frames for
//!   everyone (system alerts) arrive on `soulchat.deliver.broadcast`.
//!
//! Each socket has a bounded queue. A socket whose queue is full is told to close (4000), never
//! buffered without limit; a slow client cannot hold up anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push::OrderedConfig};
use bytes::Bytes;
use futures::StreamExt;
use soulchat_subjects::chat::messages::{ChatEvent, ReadReply, chat_event::Event};
use soulchat_subjects::{CallContext, Caller, streams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::people::{NameCache, Names};
use crate::ws::frames;
use crate::ws::presence::Presence;

/// What the hub hands a socket: one pointer, shared by every socket it goes to. Each socket's
/// queue allocates its first block of slots up front, so the slot's size counts per idle socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A committed conversation event, in `seq` order per conversation.
    Chat(Arc<ChatFrame>),
    /// A live frame with no order to keep.
    Frame(Arc<Bytes>),
}

#[derive(Debug)]
pub struct ChatFrame {
    pub conversation_id: String,
    pub seq: i64,
    /// Set when the event ends someone's membership (or the whole conversation: `*`).
    pub ends_membership_of: Option<String>,
    pub frame: Bytes,
}

struct Slot {
    id: u64,
    queue: mpsc::Sender<Outbound>,
    too_slow: CancellationToken,
}

struct UserSockets {
    slots: Vec<Slot>,
    /// Ends the user's `soulchat.deliver.<user_id>` subscription.
    subscription: CancellationToken,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    caller: Caller,
    users: Mutex<HashMap<String, UserSockets>>,
    names: NameCache,
    presence: Presence,
    next_id: AtomicU64,
    /// Frames queued per socket before it counts as too slow.
    queue: usize,
    /// Reconnects and slow-consumer drops of this gateway's NATS connection.
    disruptions: soulchat_subjects::connect::Disruptions,
}

/// A registered socket: its queue and the token the hub cancels when the socket is too slow.
pub struct Registration {
    pub id: u64,
    pub queue: mpsc::Receiver<Outbound>,
    pub too_slow: CancellationToken,
}

impl Hub {
    pub async fn start(
        client: async_nats::Client,
        caller: Caller,
        queue: usize,
        disruptions: soulchat_subjects::connect::Disruptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Hub> {
        let js = jetstream::new(client.clone());
        let presence = Presence::new(js.get_key_value(streams::PRESENCE_BUCKET).await?);
        let hub = Hub {
            inner: Arc::new(Inner {
                client,
                caller,
                users: Mutex::new(HashMap::new()),
                names: NameCache::new(),
                presence,
                next_id: AtomicU64::new(1),
                queue: queue.max(1),
                disruptions,
            }),
        };
        tokio::spawn(hub.clone().follow_chat_stream(js, shutdown.clone()));
        tokio::spawn(hub.clone().forward_broadcasts(shutdown.clone()));
        tokio::spawn(hub.clone().refresh_presence(shutdown));
        Ok(hub)
    }

    /// How many times live messages may have been lost so far; a socket opened before a change
    /// must resume.
    pub fn disruptions(&self) -> u64 {
        *self.inner.disruptions.borrow()
    }

    pub fn queue(&self) -> usize {
        self.inner.queue
    }

    pub fn names(&self) -> &NameCache {
        &self.inner.names
    }

    /// Adds a socket of `user_id`; the first one subscribes to the user's deliveries and marks
    /// the user online.
    pub async fn register(&self, user_id: &str) -> Registration {
        let (queue, receiver) = mpsc::channel(self.inner.queue);
        let too_slow = CancellationToken::new();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
            let entry = users.entry(user_id.to_owned());
            let first = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
            let sockets =
                entry.or_insert_with(|| UserSockets { slots: Vec::new(), subscription: CancellationToken::new() });
            sockets.slots.push(Slot { id, queue, too_slow: too_slow.clone() });
            first.then(|| sockets.subscription.clone())
        };
        if let Some(stop) = first {
            // Subscribed (and the server told) before the socket is served, so that nothing
            // published for the user after this point is missed.
            match self.inner.client.subscribe(streams::deliver(user_id)).await {
                Ok(subscription) => {
                    let _ = self.inner.client.flush().await;
                    tokio::spawn(self.clone().forward_deliveries(user_id.to_owned(), subscription, stop));
                }
                Err(e) => tracing::warn!(user = %user_id, "subscribing to deliveries: {e}"),
            }
            self.presence_changed(user_id, true).await;
        }
        Registration { id, queue: receiver, too_slow }
    }

    /// Removes a socket; the last one of a user ends its subscription and marks it offline.
    pub async fn unregister(&self, user_id: &str, id: u64) {
        let last = {
            let mut users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
            let Some(sockets) = users.get_mut(user_id) else { return };
            sockets.slots.retain(|s| s.id != id);
            if sockets.slots.is_empty() {
                let sockets = users.remove(user_id);
                sockets.map(|s| s.subscription.cancel()).is_some()
            } else {
                false
            }
        };
        if last {
            self.presence_changed(user_id, false).await;
        }
    }

    fn holds(&self, user_id: &str) -> bool {
        self.inner.users.lock().unwrap_or_else(|p| p.into_inner()).contains_key(user_id)
    }

    /// Queues `outbound` to every socket of `user_id` here; a full queue marks its socket too slow.
    fn dispatch(&self, user_id: &str, outbound: &Outbound) {
        let users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sockets) = users.get(user_id) else { return };
        for slot in &sockets.slots {
            if let Err(mpsc::error::TrySendError::Full(_)) = slot.queue.try_send(outbound.clone()) {
                slot.too_slow.cancel();
            }
        }
    }

    /// Publishes a live frame to every gateway holding sockets of `user_ids`.
    pub async fn deliver(&self, user_ids: &[String], frame: Bytes) {
        for user_id in user_ids {
            if let Err(e) = self.inner.client.publish(streams::deliver(user_id), frame.clone()).await {
                tracing::warn!(user = %user_id, "live delivery: {e}");
            }
        }
    }

    /// Tells a conversation's members (the reader included) about a read receipt.
    pub async fn announce_read(&self, ctx: &CallContext, read: ReadReply) {
        let name = Names::of_ids(&self.inner.caller, ctx, [read.user_id.as_str()])
            .await
            .ok()
            .and_then(|n| n.get(&read.user_id));
        let frame = frames::read(&read.conversation_id, name, read.read_seq);
        self.deliver(&read.recipients, frame).await;
    }

    async fn forward_deliveries(
        self,
        user_id: String,
        mut subscription: async_nats::Subscriber,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => self.dispatch(&user_id, &Outbound::Frame(Arc::new(message.payload))),
                    None => return,
                },
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Frames for everyone (system alerts), to every socket held here.
    async fn forward_broadcasts(self, shutdown: CancellationToken) {
        let mut subscription = match self.inner.client.subscribe(streams::BROADCAST).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("subscribing to broadcasts: {e}");
                return;
            }
        };
        loop {
            tokio::select! {
                message = subscription.next() => match message {
                    Some(message) => {
                        let frame = Outbound::Frame(Arc::new(message.payload));
                        let users: Vec<String> = self.inner.users.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
                        for user_id in users {
                            self.dispatch(&user_id, &frame);
                        }
                    }
                    None => return,
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Follows the chat stream for as long as the gateway runs, resuming after the last stream
    /// sequence it handled whenever the consumer has to be recreated.
    async fn follow_chat_stream(self, js: jetstream::Context, shutdown: CancellationToken) {
        let mut next: Option<u64> = None;
        loop {
            tokio::select! {
                result = self.consume_chat(&js, &mut next) => {
                    if let Err(e) = result {
                        tracing::warn!("chat stream consumer: {e:#}; recreating");
                    }
                }
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn consume_chat(&self, js: &jetstream::Context, next: &mut Option<u64>) -> anyhow::Result<()> {
        let stream = js.get_stream(streams::CHAT_STREAM).await?;
        let deliver_policy = match *next {
            Some(sequence) => DeliverPolicy::ByStartSequence { start_sequence: sequence },
            None => DeliverPolicy::New,
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.inner.client.new_inbox(),
                filter_subject: streams::CHAT_SUBJECTS.to_owned(),
                deliver_policy,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message?;
            if let Ok(info) = message.info() {
                *next = Some(info.stream_sequence + 1);
            }
            match <ChatEvent as prost::Message>::decode(message.payload.clone()) {
                Ok(event) => self.fan_out(event).await,
                Err(e) => tracing::error!(subject = %message.subject, "undecodable chat event skipped: {e}"),
            }
        }
        Ok(())
    }

    async fn fan_out(&self, event: ChatEvent) {
        let local: Vec<String> = event.recipients.iter().filter(|r| self.holds(r)).cloned().collect();
        if local.is_empty() {
            return;
        }
        let names = match self.inner.names.names(&self.inner.caller, frames::user_ids(&event)).await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!("names for a chat event: {e}; sending without them");
                Names::default()
            }
        };
        let ends_membership_of = match &event.event {
            Some(Event::MemberRemoved(m)) => Some(m.user_id.clone()),
            Some(Event::ConversationDeleted(_)) => Some("*".to_owned()),
            _ => None,
        };
        let (conversation_id, seq) = (event.conversation_id.clone(), event.seq);
        let frame = frames::chat_event(event, &names);
        let outbound = Outbound::Chat(Arc::new(ChatFrame { conversation_id, seq, ends_membership_of, frame }));
        for user_id in &local {
            self.dispatch(user_id, &outbound);
        }
    }

    /// Records the change and tells the user's contacts, off the caller's path.
    async fn presence_changed(&self, user_id: &str, online: bool) {
        self.inner.presence.record(user_id, online).await;
        let hub = self.clone();
        let user_id = user_id.to_owned();
        tokio::spawn(async move {
            let (contacts, frame) =
                hub.inner.presence.announcement(&hub.inner.caller, &hub.inner.names, &user_id, online).await;
            if let Some(frame) = frame {
                hub.deliver(&contacts, frame).await;
            }
        });
    }

    /// The presence of a user's contacts, for a socket that just opened.
    pub async fn presence_snapshot(&self, user_id: &str) -> Vec<Bytes> {
        self.inner.presence.snapshot(&self.inner.caller, &self.inner.names, user_id).await
    }

    /// Keeps online users' presence entries alive; a gateway that dies stops refreshing and its
    /// users fall offline when the bucket's TTL passes. Each user is refreshed once per
    /// [`PRESENCE_REFRESH`], in the second its id hashes to, so that the writes (and the
    /// watchers' updates) come as a steady trickle rather than one burst of every online user.
    async fn refresh_presence(self, shutdown: CancellationToken) {
        let slots = PRESENCE_REFRESH.as_secs().max(1);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for second in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let due: Vec<String> = {
                let users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
                users.keys().filter(|id| refresh_slot(id, slots) == second % slots).cloned().collect()
            };
            futures::stream::iter(due)
                .for_each_concurrent(PRESENCE_WRITES, |user_id| {
                    let presence = &self.inner.presence;
                    async move { presence.record(&user_id, true).await }
                })
                .await;
        }
    }
}

/// How often an online user's presence entry is rewritten: well within the bucket's TTL.
const PRESENCE_REFRESH: Duration = Duration::from_secs(streams::PRESENCE_TTL.as_secs() / 3);
/// Presence writes in flight at once during a refresh.
const PRESENCE_WRITES: usize = 32;

/// The second (of `slots`) in which a user's presence is refreshed; stable for a user.
fn refresh_slot(user_id: &str, slots: u64) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(user_id) % slots
}

#[cfg(test)]
mod tests {
    use super::Outbound;

    /// Every socket's queue holds a block of 32 of these from the start.
    #[test]
    fn queue_slots_stay_small() {
        assert!(size_of::<Outbound>() <= 16, "Outbound is {} bytes", size_of::<Outbound>());
    }
}
