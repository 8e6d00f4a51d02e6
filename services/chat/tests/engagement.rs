//! Reactions (and the other conversation events members make about messages) through real NATS:
//! a private nats-server and every worker per test (`soulchat-testkit`), operations called as
//! the gateway calls them.

use std::time::Duration;

use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::{self, messages::*};
use soulchat_subjects::{CallContext, CallError, Caller, Operation, ServiceError};
use soulchat_testkit::{Backend, Mesh, each_backend};

each_backend!(reactions_are_counted_idempotent_and_logged);

struct Chat {
    mesh: Mesh,
    caller: Caller,
}

impl Chat {
    async fn start(backend: Backend) -> Chat {
        let mesh = Mesh::start(backend).await;
        let caller = Caller::new(mesh.client().await, Duration::from_secs(10));
        Chat { mesh, caller }
    }

    async fn call<O: Operation>(&self, user: &str, request: O::Request) -> Result<O::Response, ServiceError> {
        self.caller.call::<O>(&CallContext::internal().with_user(user), &request).await.map_err(|e| match e {
            CallError::Service(e) => e,
            other => panic!("{}: {other}", O::SUBJECT),
        })
    }

    async fn ok<O: Operation>(&self, user: &str, request: O::Request) -> O::Response {
        self.call::<O>(user, request).await.unwrap_or_else(|e| panic!("{} as {user}: {e}", O::SUBJECT))
    }

    /// The error of a call that must fail: its code and the fields it names.
    async fn refused<O: Operation>(&self, user: &str, request: O::Request) -> (u16, Vec<String>) {
        match self.call::<O>(user, request).await {
            Ok(_) => panic!("{} as {user} succeeded", O::SUBJECT),
            Err(e) => (e.code.as_u16(), e.fields.into_keys().collect()),
        }
    }

    async fn group(&self, owner: &str, members: &[&str]) -> String {
        let request = CreateGroupRequest {
            name: "crew".into(),
            member_ids: members.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        };
        self.ok::<chat::CreateGroup>(owner, request).await.conversation.unwrap().id
    }

    async fn send(&self, user: &str, conversation: &str, client_id: &str, content: &str) -> Message {
        let request = SendRequest {
            conversation_id: conversation.into(),
            client_id: client_id.into(),
            content: content.into(),
            ..Default::default()
        };
        self.ok::<chat::Send>(user, request).await.message.unwrap()
    }

    async fn last_seq(&self, user: &str, conversation: &str) -> i64 {
        let request = GetRequest { conversation_id: conversation.into() };
        self.ok::<chat::Get>(user, request).await.conversation.unwrap().last_seq
    }
}

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn reactions(message: &Message) -> Vec<(&str, u32, bool)> {
    message.reactions.iter().map(|r| (r.emoji.as_str(), r.count, r.me)).collect()
}

async fn reactions_are_counted_idempotent_and_logged(backend: Backend) {
    let t = Chat::start(backend).await;
    let (owner, member, outsider) = (user(), user(), user());
    let id = t.group(&owner, &[&member]).await;
    let seq = t.send(&owner, &id, "r-1", "react to me").await.seq;
    let react = |emoji: &str| ReactionRequest { conversation_id: id.clone(), seq, emoji: emoji.into() };

    let added = t.ok::<chat::AddReaction>(&member, react("👍")).await.message.unwrap();
    assert_eq!(reactions(&added), [("👍", 1, true)]);
    let before = t.last_seq(&owner, &id).await;
    let again = t.ok::<chat::AddReaction>(&member, react("👍")).await.message.unwrap();
    assert_eq!(reactions(&again), [("👍", 1, true)]);
    assert_eq!(t.last_seq(&owner, &id).await, before, "adding twice records nothing");
    let both = t.ok::<chat::AddReaction>(&owner, react("👍")).await.message.unwrap();
    assert_eq!(reactions(&both), [("👍", 2, true)]);
    t.ok::<chat::AddReaction>(&owner, react(":tada:")).await;

    // Every view carries them, `me` as the caller sees it.
    let history = HistoryRequest { conversation_id: id.clone(), ..Default::default() };
    let seen = t.ok::<chat::History>(&member, history.clone()).await;
    assert_eq!(reactions(&seen.messages[0]), [("👍", 2, true), (":tada:", 1, false)]);
    let list = t.ok::<chat::List>(&member, ListRequest::default()).await;
    assert_eq!(reactions(list.conversations[0].last_message.as_ref().unwrap()), [("👍", 2, true), (":tada:", 1, false)]);

    let removed = t.ok::<chat::RemoveReaction>(&member, react("👍")).await.message.unwrap();
    assert_eq!(reactions(&removed), [("👍", 1, false), (":tada:", 1, false)]);
    let before = t.last_seq(&owner, &id).await;
    t.ok::<chat::RemoveReaction>(&member, react("👍")).await;
    assert_eq!(t.last_seq(&owner, &id).await, before, "removing twice records nothing");

    // Each change is an event with its own seq, replayed by resume.
    let resumed = t.ok::<chat::Resume>(&member, ResumeRequest::default()).await;
    let changes: Vec<(i64, String, bool)> = resumed.conversations[0]
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::ReactionChanged(r)) => Some((r.message_seq, r.emoji.clone(), r.added)),
            _ => None,
        })
        .collect();
    let expected = [(seq, "👍", true), (seq, "👍", true), (seq, ":tada:", true), (seq, "👍", false)];
    assert_eq!(changes, expected.map(|(s, e, a)| (s, e.to_owned(), a)));

    // Bad input names the field; strangers learn nothing.
    for bad in ["", "👍👍", "thumbs", ":not a code:", ":this_shortcode_is_much_too_long_ok:"] {
        assert_eq!(t.refused::<chat::AddReaction>(&member, react(bad)).await, (422, vec!["emoji".to_owned()]), "{bad:?}");
    }
    assert_eq!(t.refused::<chat::AddReaction>(&outsider, react("👍")).await.0, 404);
    let missing = ReactionRequest { conversation_id: id.clone(), seq: 999, emoji: "👍".into() };
    assert_eq!(t.refused::<chat::AddReaction>(&member, missing).await, (404, vec!["message".to_owned()]));

    // At most 20 distinct emoji on a message; one already there may still be used.
    let full = t.send(&member, &id, "r-2", "full").await.seq;
    let on_full = |emoji: &str| ReactionRequest { conversation_id: id.clone(), seq: full, emoji: emoji.into() };
    for i in 0..20 {
        t.ok::<chat::AddReaction>(&member, on_full(&format!(":e{i}:"))).await;
    }
    assert_eq!(t.refused::<chat::AddReaction>(&owner, on_full(":e20:")).await, (422, vec!["emoji".to_owned()]));
    let joined = t.ok::<chat::AddReaction>(&owner, on_full(":e7:")).await.message.unwrap();
    assert_eq!(joined.reactions.len(), 20);
    assert_eq!(joined.reactions[7].count, 2);

    // A deleted message loses its reactions and takes no more.
    t.ok::<chat::DeleteMessage>(&member, DeleteMessageRequest { conversation_id: id.clone(), seq: full }).await;
    assert_eq!(t.refused::<chat::AddReaction>(&owner, on_full(":e1:")).await.0, 404);
    let seen = t.ok::<chat::History>(&member, history).await;
    assert!(seen.messages[1].deleted && seen.messages[1].reactions.is_empty());
    t.mesh.shutdown().await;
}
