//! The sockets this gateway holds, per user, and their queues: where every feed ends.
//!
//! A frame is rendered once and queued, as one shared pointer, to every socket it is for. Each
//! socket's queue is bounded: a socket whose queue is full is told to close (4000, the client
//! resumes), never buffered without limit, so a slow client cannot hold up anyone else.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a socket is handed: one pointer, shared by every socket it goes to. Each socket's queue
/// allocates its first block of slots up front, so the slot's size counts per idle socket.
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
    /// For a new message, its sender and `client_id`: the socket that sent it knows its own
    /// message by them when the live copy arrives before the send's answer.
    pub sent_as: Option<(String, String)>,
    pub frame: Bytes,
}

struct Slot {
    id: u64,
    queue: mpsc::Sender<Outbound>,
    too_slow: CancellationToken,
}

struct UserSockets {
    slots: Vec<Slot>,
    /// Cancelled when the user's last socket here goes: ends what follows the user for them
    /// (the `soulchat.deliver.<user_id>` subscription).
    released: CancellationToken,
}

/// A registered socket: its queue and the token cancelled when the socket is too slow.
pub struct Registration {
    pub id: u64,
    pub queue: mpsc::Receiver<Outbound>,
    pub too_slow: CancellationToken,
}

/// Clones share the registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    users: Mutex<HashMap<String, UserSockets>>,
    next_id: AtomicU64,
    /// Frames queued per socket before it counts as too slow.
    queue: usize,
}

impl Registry {
    pub fn new(queue: usize) -> Self {
        Registry { inner: Arc::new(Inner { users: Mutex::default(), next_id: AtomicU64::new(1), queue: queue.max(1) }) }
    }

    pub fn queue(&self) -> usize {
        self.inner.queue
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserSockets>> {
        self.inner.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a socket of `user_id`. With the user's first socket here comes the token that is
    /// cancelled when its last one goes.
    pub fn add(&self, user_id: &str) -> (Registration, Option<CancellationToken>) {
        let (queue, receiver) = mpsc::channel(self.inner.queue);
        let too_slow = CancellationToken::new();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut users = self.users();
        let entry = users.entry(user_id.to_owned());
        let first = matches!(entry, Entry::Vacant(_));
        let sockets = entry.or_insert_with(|| UserSockets { slots: Vec::new(), released: CancellationToken::new() });
        sockets.slots.push(Slot { id, queue, too_slow: too_slow.clone() });
        (Registration { id, queue: receiver, too_slow }, first.then(|| sockets.released.clone()))
    }

    /// Removes a socket; `true` when it was the user's last here (its token is cancelled).
    pub fn remove(&self, user_id: &str, id: u64) -> bool {
        let mut users = self.users();
        let Some(sockets) = users.get_mut(user_id) else { return false };
        sockets.slots.retain(|s| s.id != id);
        if !sockets.slots.is_empty() {
            return false;
        }
        users.remove(user_id).map(|s| s.released.cancel()).is_some()
    }

    pub fn holds(&self, user_id: &str) -> bool {
        self.users().contains_key(user_id)
    }

    /// The users held here that `pick` chooses.
    pub fn users_where(&self, pick: impl Fn(&str) -> bool) -> Vec<String> {
        self.users().keys().filter(|id| pick(id)).cloned().collect()
    }

    /// Queues `outbound` to every socket of `user_id` here; a full queue marks its socket too slow.
    pub fn dispatch(&self, user_id: &str, outbound: &Outbound) {
        if let Some(sockets) = self.users().get(user_id) {
            offer(sockets, outbound);
        }
    }

    /// Queues `outbound` to every socket held here.
    pub fn dispatch_all(&self, outbound: &Outbound) {
        for sockets in self.users().values() {
            offer(sockets, outbound);
        }
    }
}

fn offer(sockets: &UserSockets, outbound: &Outbound) {
    for slot in &sockets.slots {
        if let Err(mpsc::error::TrySendError::Full(_)) = slot.queue.try_send(outbound.clone())
            && !slot.too_slow.is_cancelled()
        {
            soulchat_subjects::metrics::ws_slow_consumer_dropped();
            slot.too_slow.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every socket's queue holds a block of 32 of these from the start.
    #[test]
    fn queue_slots_stay_small() {
        assert!(size_of::<Outbound>() <= 16, "Outbound is {} bytes", size_of::<Outbound>());
    }

    #[test]
    fn a_full_queue_marks_its_socket_too_slow_and_the_last_socket_releases_the_user() {
        let registry = Registry::new(1);
        let (a, released) = registry.add("u1");
        let (b, again) = registry.add("u1");
        let released = released.expect("the first socket comes with the token");
        assert!(again.is_none());
        let frame = Outbound::Frame(Arc::new(Bytes::from_static(b"{}")));
        registry.dispatch("u1", &frame);
        assert!(!a.too_slow.is_cancelled());
        registry.dispatch_all(&frame);
        assert!(a.too_slow.is_cancelled() && b.too_slow.is_cancelled());
        assert!(!registry.remove("u1", a.id));
        assert!(!released.is_cancelled());
        assert!(registry.remove("u1", b.id));
        assert!(released.is_cancelled() && !registry.holds("u1"));
    }
}
