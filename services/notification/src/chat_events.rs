//! Notifications from committed chat events (`SOULCHAT_CHAT`): a message in a direct
//! conversation, for a recipient with no live socket; an `@username` mention, for every member
//! it names, online or not and even in a muted conversation; a thread reply, for everyone who
//! took part in the thread (unless muted); being added to a group by someone else. A message
//! from someone the recipient blocks notifies nobody (asked of the profile worker only when a
//! message would notify someone).
//!
//! Consumed with the runtime's durable consumer ([`soulchat_subjects::notification::CHAT`]).

use std::collections::HashMap;

use soulchat_runtime::WriteTx;
use soulchat_runtime::consumer::EventHandler;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::messages::{ChatEvent, GetRequest, Message};
use soulchat_subjects::profile::messages::{BlockedAmongRequest, LookupRequest, Profile};
use soulchat_subjects::{CallContext, chat, profile};

use crate::Notifications;
use crate::compose::{Draft, Stored};

/// How much of a message a notification quotes.
const PREVIEW_CHARS: usize = 200;

/// Look-ups (presence, usernames, the group's name) happen in `prepare`, outside the
/// transaction; the drafts are applied with the event's id in one transaction.
impl EventHandler<chat::Committed> for Notifications {
    type Prepared = Vec<Draft>;
    type Effect = Vec<Stored>;

    /// The chat history from before this consumer existed notifies nobody.
    const FROM_NOW: bool = true;

    async fn prepare(&self, event: &ChatEvent) -> anyhow::Result<Vec<Draft>> {
        plan(self, event).await
    }

    fn changes_nothing(drafts: &Vec<Draft>) -> bool {
        drafts.is_empty()
    }

    async fn handle(&self, tx: &mut WriteTx<'_>, _event: ChatEvent, drafts: Vec<Draft>) -> anyhow::Result<Vec<Stored>> {
        let mut stored = Vec::new();
        for draft in drafts {
            stored.extend(self.notify(tx, draft).await?);
        }
        Ok(stored)
    }

    async fn committed(&self, stored: Vec<Stored>) {
        self.published(stored).await;
    }
}

/// What the event should notify, with the look-ups it takes.
async fn plan(n: &Notifications, event: &ChatEvent) -> anyhow::Result<Vec<Draft>> {
    match &event.event {
        Some(Event::MessageCreated(message)) if !message.deleted && !message.content.is_empty() => {
            message_drafts(n, event, message).await
        }
        Some(Event::MemberAdded(member)) if event.conversation_kind == "group" && member.user_id != event.actor_id => {
            let name = group_name(n, &event.conversation_id, &member.user_id).await;
            added_drafts(n, event, std::slice::from_ref(&member.user_id), name).await
        }
        Some(Event::ConversationCreated(conversation)) if conversation.kind == "group" => {
            let added: Vec<String> =
                conversation.members.iter().map(|m| m.user_id.clone()).filter(|u| *u != event.actor_id).collect();
            added_drafts(n, event, &added, Some(conversation.name.clone())).await
        }
        _ => Ok(Vec::new()),
    }
}

async fn message_drafts(n: &Notifications, event: &ChatEvent, message: &Message) -> anyhow::Result<Vec<Draft>> {
    let direct = event.conversation_kind == "direct";
    let others = |u: &&String| **u != message.sender_id;
    // Only members are told: a mention of an outsider reveals nothing to them.
    let mut mentioned: Vec<String> =
        message.mention_ids.iter().filter(others).filter(|u| event.recipients.contains(u)).cloned().collect();
    mentioned.sort_unstable();
    mentioned.dedup();
    // A thread reply is for those who took part in the thread (and are still members).
    let mut in_thread: Vec<String> = event
        .thread_participant_ids
        .iter()
        .filter(others)
        .filter(|u| event.recipients.contains(u) && !mentioned.contains(u))
        .cloned()
        .collect();
    in_thread.sort_unstable();
    in_thread.dedup();
    // A message reaches an online recipient's socket anyway, so most direct messages notify
    // nobody, and one to an online user costs no look-up at all.
    let mut unmentioned: Vec<String> = if direct {
        let told = |u: &&String| !mentioned.contains(u) && !in_thread.contains(u);
        event.recipients.iter().filter(others).filter(told).filter(|u| !n.online(u)).cloned().collect()
    } else {
        Vec::new()
    };
    if mentioned.is_empty() && in_thread.is_empty() && unmentioned.is_empty() {
        return Ok(Vec::new());
    }
    // Nobody is pushed a message from someone they block.
    let among = mentioned.iter().chain(&in_thread).chain(&unmentioned).cloned().collect();
    let request = BlockedAmongRequest { user_id: message.sender_id.clone(), among };
    let blockers = n.caller.call::<profile::BlockedAmong>(&CallContext::internal(), &request).await?.blocked_by;
    for told in [&mut mentioned, &mut in_thread, &mut unmentioned] {
        told.retain(|u| !blockers.contains(u));
    }
    let profiles = lookup(n, vec![message.sender_id.clone()], Vec::new()).await?;
    let sender = profiles.iter().find(|p| p.user_id == message.sender_id).map_or("Someone", |p| p.username.as_str());
    let preview: String = message.content.chars().take(PREVIEW_CHARS).collect();
    let mentions = mentioned.into_iter().map(|u| (u, "mention", format!("{sender} mentioned you"), true));
    let replies = in_thread.into_iter().map(|u| (u, "thread_reply", format!("{sender} replied in a thread"), false));
    let messages = unmentioned.into_iter().map(|u| (u, "message", format!("New message from {sender}"), false));
    let mut drafts = Vec::new();
    for (user, kind, title, even_muted) in mentions.chain(replies).chain(messages) {
        drafts.push(Draft {
            user_id: user,
            kind,
            dedup_key: format!("chat:{}:{}", event.conversation_id, event.seq),
            title,
            body: preview.clone(),
            data: HashMap::from([
                ("conversation_id".to_owned(), event.conversation_id.clone()),
                ("seq".to_owned(), message.seq.to_string()),
                ("username".to_owned(), sender.to_owned()),
            ]),
            conversation_id: Some(event.conversation_id.clone()),
            even_muted,
        });
    }
    Ok(drafts)
}

async fn added_drafts(
    n: &Notifications,
    event: &ChatEvent,
    added: &[String],
    group: Option<String>,
) -> anyhow::Result<Vec<Draft>> {
    if added.is_empty() {
        return Ok(Vec::new());
    }
    let actor = if event.actor_id.is_empty() {
        None
    } else {
        lookup(n, vec![event.actor_id.clone()], Vec::new()).await?.into_iter().next().map(|p| p.username)
    };
    let who = actor.clone().unwrap_or_else(|| "Someone".to_owned());
    let body = match group.as_deref().filter(|g| !g.is_empty()) {
        Some(name) => format!("{who} added you to {name}"),
        None => format!("{who} added you to a group"),
    };
    let mut data = HashMap::from([("conversation_id".to_owned(), event.conversation_id.clone())]);
    if let Some(actor) = actor {
        data.insert("username".to_owned(), actor);
    }
    Ok(added
        .iter()
        .map(|user| Draft {
            user_id: user.clone(),
            kind: "added_to_group",
            dedup_key: format!("chat:{}:{}", event.conversation_id, event.seq),
            title: "Added to a group".to_owned(),
            body: body.clone(),
            data: data.clone(),
            conversation_id: Some(event.conversation_id.clone()),
            even_muted: false,
        })
        .collect())
}

async fn lookup(n: &Notifications, user_ids: Vec<String>, usernames: Vec<String>) -> anyhow::Result<Vec<Profile>> {
    let reply =
        n.caller.call::<profile::Lookup>(&CallContext::internal(), &LookupRequest { user_ids, usernames }).await?;
    Ok(reply.profiles)
}

/// The group's name as the added member sees it; best effort (the notification still goes
/// without it).
async fn group_name(n: &Notifications, conversation_id: &str, member: &str) -> Option<String> {
    let request = GetRequest { conversation_id: conversation_id.to_owned() };
    match n.caller.call::<chat::Get>(&CallContext::internal().with_user(member), &request).await {
        Ok(reply) => reply.conversation.map(|c| c.name),
        Err(e) => {
            tracing::debug!(%conversation_id, "group name unavailable: {e}");
            None
        }
    }
}
