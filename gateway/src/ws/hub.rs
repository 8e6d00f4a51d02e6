//! The session hub: the live side of the gateway, wired once and shared by every WebSocket
//! session. It starts the feeds that reach sockets ([`chat_feed`](super::chat_feed) for
//! committed conversation events, [`deliveries`] for per-user and broadcast frames) and the
//! presence refresh, and keeps the [`Registry`] of sockets: a user's first socket here
//! subscribes to the user's deliveries and marks the user online, the last one ends both.

use async_nats::jetstream;
use bytes::Bytes;
use soulchat_subjects::{Caller, streams};
use tokio_util::sync::CancellationToken;

use crate::people::NameCache;
use crate::ws::chat_feed::ChatFeed;
use crate::ws::deliveries;
use crate::ws::presence::Presence;
use crate::ws::registry::{Registration, Registry};

pub struct Hub {
    client: async_nats::Client,
    registry: Registry,
    names: NameCache,
    presence: Presence,
    /// Reconnects and slow-consumer drops of this gateway's NATS connection.
    disruptions: soulchat_subjects::connect::Disruptions,
}

impl Hub {
    /// Connects the feeds, which run until `shutdown`.
    pub async fn start(
        client: async_nats::Client,
        caller: Caller,
        queue: usize,
        disruptions: soulchat_subjects::connect::Disruptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Hub> {
        let js = jetstream::new(client.clone());
        let (registry, names) = (Registry::new(queue), NameCache::new());
        let presence = Presence::new(js.get_key_value(streams::PRESENCE_BUCKET).await?, caller.clone(), names.clone());
        let chat = ChatFeed { registry: registry.clone(), names: names.clone(), caller };
        tokio::spawn(chat.follow(js, shutdown.clone()));
        tokio::spawn(deliveries::forward_broadcasts(client.clone(), registry.clone(), shutdown.clone()));
        tokio::spawn(presence.clone().refresh(registry.clone(), shutdown));
        Ok(Hub { client, registry, names, presence, disruptions })
    }

    /// How many times live messages may have been lost so far; a socket opened before a change
    /// must resume.
    pub fn disruptions(&self) -> u64 {
        *self.disruptions.borrow()
    }

    /// Frames queued per socket before it counts as too slow.
    pub fn queue(&self) -> usize {
        self.registry.queue()
    }

    pub fn names(&self) -> &NameCache {
        &self.names
    }

    /// Adds a socket of `user_id`; the first one subscribes to the user's deliveries and marks
    /// the user online.
    pub async fn register(&self, user_id: &str) -> Registration {
        let (registration, first) = self.registry.add(user_id);
        if let Some(released) = first {
            deliveries::follow_user(&self.client, &self.registry, user_id, released).await;
            self.presence.changed(user_id, true).await;
        }
        registration
    }

    /// Removes a socket; the last one of a user ends its subscription and marks it offline.
    pub async fn unregister(&self, user_id: &str, id: u64) {
        if self.registry.remove(user_id, id) {
            self.presence.changed(user_id, false).await;
        }
    }

    /// The presence of a user's contacts, for a socket that just opened.
    pub async fn presence_snapshot(&self, user_id: &str) -> Vec<Bytes> {
        self.presence.snapshot(user_id).await
    }
}
