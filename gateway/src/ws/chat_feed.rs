//! Committed conversation events, from the `SOULCHAT_CHAT` stream through one ordered consumer
//! per gateway: JetStream redelivers from the last stream sequence seen after a reconnect or a
//! gap, so nothing committed is lost in flight. Each event is rendered once and queued to every
//! local socket of its recipients; the sessions' per-conversation `seq` cursors make it reach
//! each client once and in order.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push::OrderedConfig};
use futures::StreamExt;
use soulchat_subjects::chat::messages::{ChatEvent, chat_event::Event};
use soulchat_subjects::{Caller, streams};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::people::{NameCache, Names};
use crate::views::frames;
use crate::ws::registry::{ChatFrame, Outbound, Registry};

pub struct ChatFeed {
    pub registry: Registry,
    pub names: NameCache,
    pub caller: Caller,
}

impl ChatFeed {
    /// Follows the chat stream for as long as the gateway runs, resuming after the last stream
    /// sequence it handled whenever the consumer has to be recreated.
    pub async fn follow(self, js: jetstream::Context, shutdown: CancellationToken) {
        let mut next: Option<u64> = None;
        loop {
            tokio::select! {
                result = self.consume(&js, &mut next) => {
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

    async fn consume(&self, js: &jetstream::Context, next: &mut Option<u64>) -> anyhow::Result<()> {
        let stream = js.get_stream(streams::CHAT_STREAM).await?;
        let deliver_policy = match *next {
            Some(sequence) => DeliverPolicy::ByStartSequence { start_sequence: sequence },
            None => DeliverPolicy::New,
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.caller.client().new_inbox(),
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
                Ok(event) => self.fan_out(event).instrument(crate::trace::fan_out_span(&message)).await,
                Err(e) => tracing::error!(subject = %message.subject, "undecodable chat event skipped: {e}"),
            }
        }
        Ok(())
    }

    async fn fan_out(&self, event: ChatEvent) {
        let age = soulchat_subjects::time::now_ms().saturating_sub(event.at_ms).max(0);
        soulchat_subjects::metrics::chat_event_fanned_out(Duration::from_millis(age as u64));
        let local: Vec<String> = event.recipients.iter().filter(|r| self.registry.holds(r)).cloned().collect();
        if local.is_empty() {
            return;
        }
        let names = match self.names.names(&self.caller, frames::user_ids(&event)).await {
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
        let sent_as = match &event.event {
            Some(Event::MessageCreated(m)) => Some((m.sender_id.clone(), m.client_id.clone())),
            _ => None,
        };
        let (conversation_id, seq) = (event.conversation_id.clone(), event.seq);
        let frame = frames::chat_event(event, &names);
        let outbound = Outbound::Chat(Arc::new(ChatFrame { conversation_id, seq, ends_membership_of, sent_as, frame }));
        for user_id in &local {
            self.registry.dispatch(user_id, &outbound);
        }
    }
}
