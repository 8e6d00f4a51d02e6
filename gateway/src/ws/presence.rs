//! Presence: online, offline and last seen, for the people who share a conversation with the
//! user (the chat worker's `contacts`). The gateway holding a user's first socket writes
//! "online" to the `soulchat_presence` bucket and tells the contacts; the one whose last socket
//! closes writes "offline" with the time. Entries of online users are refreshed; a gateway that
//! dies stops refreshing, and the bucket's TTL ends its users' entries.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use soulchat_subjects::chat::{self, messages::ContactsRequest};
use soulchat_subjects::{CallContext, Caller};

use crate::people::NameCache;
use crate::ws::frames;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    status: String,
    last_seen_ms: i64,
}

pub struct Presence {
    bucket: kv::Store,
}

impl Presence {
    pub fn new(bucket: kv::Store) -> Self {
        Presence { bucket }
    }

    pub async fn record(&self, user_id: &str, online: bool) {
        let entry =
            Entry { status: if online { "online" } else { "offline" }.to_owned(), last_seen_ms: crate::now_ms() };
        let value = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        if let Err(e) = self.bucket.put(user_id, value).await {
            tracing::warn!(user = %user_id, "presence: {e}");
        }
    }

    /// The user's contacts and the `presence` frame that tells them about the user.
    pub async fn announcement(
        &self,
        caller: &Caller,
        names: &NameCache,
        user_id: &str,
        online: bool,
    ) -> (Vec<String>, Option<Bytes>) {
        let contacts = contacts(caller, user_id).await;
        if contacts.is_empty() {
            return (contacts, None);
        }
        let Ok(names) = names.names(caller, vec![user_id.to_owned()]).await else { return (contacts, None) };
        let Some(name) = names.get(user_id) else { return (contacts, None) };
        let status = if online { "online" } else { "offline" };
        (contacts, Some(frames::presence(&name, status, Some(crate::now_ms()))))
    }

    /// `presence` frames for every contact of `user_id` that has an entry: what a new socket is
    /// told first.
    pub async fn snapshot(&self, caller: &Caller, names: &NameCache, user_id: &str) -> Vec<Bytes> {
        let contacts = contacts(caller, user_id).await;
        let mut known = Vec::new();
        for contact in contacts {
            let entry = self.bucket.get(&contact).await.ok().flatten();
            if let Some(entry) = entry.and_then(|v| serde_json::from_slice::<Entry>(&v).ok()) {
                known.push((contact, entry));
            }
        }
        let Ok(names) = names.names(caller, known.iter().map(|(id, _)| id.clone()).collect()).await else {
            return Vec::new();
        };
        known
            .into_iter()
            .filter_map(|(id, entry)| {
                names.get(&id).map(|name| frames::presence(&name, &entry.status, Some(entry.last_seen_ms)))
            })
            .collect()
    }
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
