//! Presence: online, offline and last seen, for the people who share a conversation with the
//! user (the chat worker's `contacts`). The gateway holding a user's first socket writes
//! "online" to the `soulchat_presence` bucket and tells the contacts; the one whose last socket
//! closes writes "offline" with the time. Entries of online users are refreshed; a gateway that
//! dies stops refreshing, and the bucket's TTL ends its users' entries.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use soulchat_subjects::chat::{self, messages::ContactsRequest};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{CallContext, Caller, streams};
use tokio_util::sync::CancellationToken;

use crate::live;
use crate::people::NameCache;
use crate::views::frames;
use crate::ws::registry::Registry;

/// How often an online user's presence entry is rewritten: well within the bucket's TTL.
const PRESENCE_REFRESH: Duration = Duration::from_secs(streams::PRESENCE_TTL.as_secs() / 3);
/// Presence writes in flight at once during a refresh.
const PRESENCE_WRITES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    status: String,
    last_seen_ms: i64,
}

/// Clones share the bucket and the name cache.
#[derive(Clone)]
pub struct Presence {
    bucket: kv::Store,
    caller: Caller,
    names: NameCache,
}

impl Presence {
    pub fn new(bucket: kv::Store, caller: Caller, names: NameCache) -> Self {
        Presence { bucket, caller, names }
    }

    async fn record(&self, user_id: &str, online: bool) {
        let entry = Entry { status: if online { "online" } else { "offline" }.to_owned(), last_seen_ms: now_ms() };
        let value = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        if let Err(e) = self.bucket.put(user_id, value).await {
            tracing::warn!(user = %user_id, "presence: {e}");
        }
    }

    /// Records that the user came online or went offline here, and tells the user's contacts,
    /// off the caller's path.
    pub async fn changed(&self, user_id: &str, online: bool) {
        self.record(user_id, online).await;
        let (presence, user_id) = (self.clone(), user_id.to_owned());
        tokio::spawn(async move {
            let (contacts, frame) = presence.announcement(&user_id, online).await;
            if let Some(frame) = frame {
                live::publish(presence.caller.client(), &contacts, frame).await;
            }
        });
    }

    /// The user's contacts and the `presence` frame that tells them about the user.
    async fn announcement(&self, user_id: &str, online: bool) -> (Vec<String>, Option<Bytes>) {
        let contacts = contacts(&self.caller, user_id).await;
        if contacts.is_empty() {
            return (contacts, None);
        }
        let Ok(names) = self.names.names(&self.caller, vec![user_id.to_owned()]).await else { return (contacts, None) };
        let Some(name) = names.get(user_id) else { return (contacts, None) };
        let status = if online { "online" } else { "offline" };
        (contacts, Some(frames::presence(&name, status, Some(now_ms()))))
    }

    /// `presence` frames for every contact of `user_id` that has an entry: what a new socket is
    /// told first.
    pub async fn snapshot(&self, user_id: &str) -> Vec<Bytes> {
        let contacts = contacts(&self.caller, user_id).await;
        let mut known = Vec::new();
        for contact in contacts {
            let entry = self.bucket.get(&contact).await.ok().flatten();
            if let Some(entry) = entry.and_then(|v| serde_json::from_slice::<Entry>(&v).ok()) {
                known.push((contact, entry));
            }
        }
        let Ok(names) = self.names.names(&self.caller, known.iter().map(|(id, _)| id.clone()).collect()).await else {
            return Vec::new();
        };
        known
            .into_iter()
            .filter_map(|(id, entry)| {
                names.get(&id).map(|name| frames::presence(&name, &entry.status, Some(entry.last_seen_ms)))
            })
            .collect()
    }

    /// Keeps the entries of the users held in `registry` alive until `shutdown`; a gateway that
    /// dies stops refreshing and its users fall offline when the bucket's TTL passes. Each user
    /// is refreshed once per [`PRESENCE_REFRESH`], in the second its id hashes to, so that the
    /// writes (and the watchers' updates) come as a steady trickle rather than one burst of
    /// every online user.
    pub async fn refresh(self, registry: Registry, shutdown: CancellationToken) {
        let slots = PRESENCE_REFRESH.as_secs().max(1);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for second in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let due = registry.users_where(|id| refresh_slot(id, slots) == second % slots);
            futures::stream::iter(due)
                .for_each_concurrent(PRESENCE_WRITES, |user_id| {
                    let presence = &self;
                    async move { presence.record(&user_id, true).await }
                })
                .await;
        }
    }
}

/// The second (of `slots`) in which a user's presence is refreshed; stable for a user.
fn refresh_slot(user_id: &str, slots: u64) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(user_id) % slots
}

async fn contacts(caller: &Caller, user_id: &str) -> Vec<String> {
    let ctx = CallContext::internal().with_user(user_id);
    match caller.call::<chat::Contacts>(&ctx, &ContactsRequest {}).await {
        Ok(reply) => reply.user_ids,
        Err(e) => {
            tracing::warn!(user = %user_id, "presence contacts: {e}");
            Vec::new()
        }
    }
}
