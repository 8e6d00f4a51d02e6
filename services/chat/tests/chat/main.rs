//! The chat worker through real NATS: a private nats-server and every worker per test
//! (`soulchat-testkit`), operations called as the gateway calls them. Conversations and messages
//! here; what members do to messages (reactions, pins, mentions, threads) in `engagement`.

mod engagement;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use futures::future::join_all;
use prost::Message as _;
use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::{self, messages::*};
use soulchat_subjects::user::{self, messages::UserEvent};
use soulchat_subjects::{CallContext, CallError, Caller, Event as _, Operation, ServiceError, headers, streams};
use soulchat_testkit::{Backend, Mesh, each_backend};

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

    /// The error code of a call that must fail.
    async fn code<O: Operation>(&self, user: &str, request: O::Request) -> u16 {
        self.refused::<O>(user, request).await.0
    }

    async fn group(&self, owner: &str, members: &[&str]) -> Conversation {
        let request = CreateGroupRequest {
            name: "crew".into(),
            description: "the crew".into(),
            member_ids: members.iter().map(|m| m.to_string()).collect(),
        };
        self.ok::<chat::CreateGroup>(owner, request).await.conversation.unwrap()
    }

    async fn send(&self, user: &str, conversation: &str, client_id: &str, content: &str) -> MessageReply {
        self.ok::<chat::Send>(user, text(conversation, client_id, content)).await
    }

    async fn history(
        &self,
        user: &str,
        conversation: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: u32,
    ) -> MessageList {
        let request = HistoryRequest { conversation_id: conversation.into(), before, after, limit: Some(limit) };
        self.ok::<chat::History>(user, request).await
    }

    async fn last_seq(&self, user: &str, conversation: &str) -> i64 {
        self.ok::<chat::Get>(user, get(conversation)).await.conversation.unwrap().last_seq
    }
}

fn text(conversation: &str, client_id: &str, content: &str) -> SendRequest {
    SendRequest {
        conversation_id: conversation.into(),
        client_id: client_id.into(),
        content: content.into(),
        kind: "text".into(),
        ..Default::default()
    }
}

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn get(conversation: &str) -> GetRequest {
    GetRequest { conversation_id: conversation.into() }
}

fn seqs(list: &MessageList) -> Vec<i64> {
    list.messages.iter().map(|m| m.seq).collect()
}

async fn direct_conversations_are_one_per_pair(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b) = (user(), user());
    let first = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await;
    assert!(first.created);
    let conversation = first.conversation.unwrap();
    assert_eq!(conversation.kind, "direct");
    assert_eq!(conversation.member_count, 2);
    assert_eq!(conversation.last_seq, 1);
    let again = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await;
    let other_way = t.ok::<chat::OpenDirect>(&b, OpenDirectRequest { user_id: a.clone() }).await;
    assert!(!again.created && !other_way.created);
    assert_eq!(again.conversation.unwrap().id, conversation.id);
    assert_eq!(other_way.conversation.unwrap().id, conversation.id);
    // Concurrent first opens of a new pair still make one.
    let c = user();
    let opens =
        join_all((0..8).map(|_| t.call::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: c.clone() }))).await;
    let opens: Vec<ConversationReply> = opens.into_iter().map(Result::unwrap).collect();
    assert_eq!(opens.iter().filter(|o| o.created).count(), 1);
    assert!(opens.iter().all(|o| o.conversation.as_ref().unwrap().id == opens[0].conversation.as_ref().unwrap().id));
    assert_eq!(t.code::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: a.clone() }).await, 422);
    assert_eq!(t.code::<chat::Get>(&user(), get(&conversation.id)).await, 404);
    t.mesh.shutdown().await;
}

async fn group_roles_and_permissions(backend: Backend) {
    let t = Chat::start(backend).await;
    let (owner, admin, member, outsider, newcomer) = (user(), user(), user(), user(), user());
    let group = t.group(&owner, &[&admin, &member]).await;
    let id = group.id.clone();
    assert_eq!(group.my_role, "owner");
    assert_eq!(group.members.len(), 3);

    let not_found = t.call::<chat::Get>(&outsider, get(&id)).await.unwrap_err();
    assert_eq!((not_found.code.as_u16(), not_found.fields["conversation"][0].as_str()), (404, "not found"));
    let rename = |name: &str| UpdateRequest { conversation_id: id.clone(), name: Some(name.into()), description: None };
    assert_eq!(t.code::<chat::Update>(&outsider, rename("x")).await, 404);
    assert_eq!(t.code::<chat::Update>(&member, rename("x")).await, 403);

    let make = |user: &str, role: &str| ChangeRoleRequest {
        conversation_id: id.clone(),
        user_id: user.into(),
        role: role.into(),
    };
    assert_eq!(t.code::<chat::ChangeRole>(&member, make(&admin, "admin")).await, 403);
    assert_eq!(t.ok::<chat::ChangeRole>(&owner, make(&admin, "admin")).await.member.unwrap().role, "admin");
    let renamed = t.ok::<chat::Update>(&admin, rename("renamed")).await.conversation.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_str()), ("renamed", "the crew"));

    let add = |user: &str, role: Option<&str>| AddMemberRequest {
        conversation_id: id.clone(),
        user_id: user.into(),
        role: role.map(Into::into),
    };
    assert_eq!(t.code::<chat::AddMember>(&member, add(&newcomer, None)).await, 403);
    assert_eq!(t.code::<chat::AddMember>(&admin, add(&newcomer, Some("admin"))).await, 403);
    assert_eq!(t.code::<chat::AddMember>(&admin, add(&newcomer, Some("owner"))).await, 422);
    let added = t.ok::<chat::AddMember>(&admin, add(&newcomer, None)).await.member.unwrap();
    assert_eq!(added.role, "member");
    assert_eq!(t.code::<chat::AddMember>(&admin, add(&newcomer, None)).await, 409);

    // Ownership: only the owner hands it on, and nobody demotes the owner.
    assert_eq!(t.code::<chat::ChangeRole>(&admin, make(&admin, "owner")).await, 403);
    assert_eq!(t.code::<chat::ChangeRole>(&admin, make(&owner, "member")).await, 403);
    let remove = |user: &str| RemoveMemberRequest { conversation_id: id.clone(), user_id: user.into() };
    assert_eq!(t.code::<chat::RemoveMember>(&owner, remove(&owner)).await, 403, "the owner cannot just leave");
    assert_eq!(t.ok::<chat::ChangeRole>(&owner, make(&admin, "owner")).await.member.unwrap().role, "owner");
    let view = t.ok::<chat::Get>(&owner, get(&id)).await.conversation.unwrap();
    assert_eq!(view.my_role, "admin");
    assert_eq!(view.members.iter().filter(|m| m.role == "owner").count(), 1);

    // Removing: admins remove members, not their equals or the owner; anyone may leave.
    assert_eq!(t.code::<chat::RemoveMember>(&member, remove(&newcomer)).await, 403);
    assert_eq!(t.code::<chat::RemoveMember>(&owner, remove(&admin)).await, 403, "the old owner is only an admin now");
    t.ok::<chat::RemoveMember>(&owner, remove(&newcomer)).await;
    assert_eq!(t.code::<chat::Get>(&newcomer, get(&id)).await, 404);
    t.ok::<chat::RemoveMember>(&member, remove(&member)).await;
    assert_eq!(t.code::<chat::Get>(&member, get(&id)).await, 404);

    // Deleting: the owner only.
    let delete = DeleteRequest { conversation_id: id.clone() };
    assert_eq!(t.code::<chat::Delete>(&owner, delete.clone()).await, 403);
    t.ok::<chat::Delete>(&admin, delete).await;
    assert_eq!(t.code::<chat::Get>(&admin, get(&id)).await, 404);
    assert_eq!(t.code::<chat::Get>(&owner, get(&id)).await, 404);
    t.mesh.shutdown().await;
}

async fn sends_are_idempotent_and_validated(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b) = (user(), user());
    let id = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await.conversation.unwrap().id;
    let first = t.send(&a, &id, "c-1", "hello").await;
    assert!(!first.duplicate);
    let message = first.message.unwrap();
    assert_eq!((message.seq, message.sender_id.as_str(), message.kind.as_str()), (2, a.as_str(), "text"));
    let retry = t.send(&a, &id, "c-1", "hello").await;
    assert!(retry.duplicate);
    assert_eq!(retry.message.unwrap(), message);
    // Concurrent retries (likely in one batch) still store one message.
    let retries = join_all((0..6).map(|_| t.call::<chat::Send>(&b, text(&id, "c-race", "once")))).await;
    let retries: Vec<MessageReply> = retries.into_iter().map(Result::unwrap).collect();
    assert_eq!(retries.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(retries.iter().all(|r| r.message == retries[0].message));
    // A retry sent with new messages (likely in one batch, whose insert the retry then fails):
    // the new ones are stored once, the retry answers with the original.
    let sends = [("c-1", "hello"), ("c-4", "four"), ("c-5", "five")];
    let mixed = join_all(sends.map(|(client_id, body)| t.call::<chat::Send>(&a, text(&id, client_id, body)))).await;
    let mixed: Vec<MessageReply> = mixed.into_iter().map(Result::unwrap).collect();
    assert!(mixed[0].duplicate);
    assert_eq!(mixed[0].message.as_ref(), Some(&message));
    assert!(!mixed[1].duplicate && !mixed[2].duplicate);
    // The same client id from another sender is another message.
    assert!(!t.send(&b, &id, "c-1", "hi").await.duplicate);
    assert_eq!(t.history(&a, &id, None, None, 50).await.messages.len(), 5);

    assert_eq!(t.code::<chat::Send>(&user(), text(&id, "x", "intruder")).await, 404);
    assert_eq!(t.code::<chat::Send>(&a, text(&id, "c-2", &"x".repeat(4001))).await, 422);
    assert_eq!(t.code::<chat::Send>(&a, text(&id, "c-2", "  ")).await, 422);
    assert_eq!(t.code::<chat::Send>(&a, text(&id, "", "no client id")).await, 422);
    let image =
        |url: Option<&str>| SendRequest { kind: "image".into(), url: url.map(Into::into), ..text(&id, "c-3", "") };
    assert_eq!(t.code::<chat::Send>(&a, image(None)).await, 422);
    assert_eq!(t.code::<chat::Send>(&a, image(Some("http://cdn.example/a.png"))).await, 422);
    let sent = t.ok::<chat::Send>(&a, image(Some("https://cdn.example/a.png"))).await.message.unwrap();
    assert_eq!(sent.url.as_deref(), Some("https://cdn.example/a.png"));
    let reply = SendRequest { reply_to: Some(sent.seq), ..text(&id, "c-4", "nice") };
    assert_eq!(t.ok::<chat::Send>(&b, reply).await.message.unwrap().reply_to, Some(sent.seq));
    let dangling = SendRequest { reply_to: Some(999), ..text(&id, "c-5", "what?") };
    assert_eq!(t.code::<chat::Send>(&b, dangling).await, 422);
    t.mesh.shutdown().await;
}

async fn concurrent_sends_take_every_seq_once(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b) = (user(), user());
    let id = t.group(&a, &[&b]).await.id;
    let sends = (0..200).map(|i| {
        let sender = if i % 2 == 0 { &a } else { &b };
        t.call::<chat::Send>(sender, text(&id, &format!("m-{i}"), &format!("message {i}")))
    });
    let replies = join_all(sends).await;
    let mut got: Vec<i64> = replies.into_iter().map(|r| r.unwrap().message.unwrap().seq).collect();
    got.sort();
    // seq 1 is the group's creation.
    assert_eq!(got, (2..=201).collect::<Vec<i64>>());
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = t.history(&a, &id, before, None, 100).await;
        all.splice(0..0, seqs(&page));
        match page.next_cursor {
            Some(cursor) => before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(all, (2..=201).collect::<Vec<i64>>());
    t.mesh.shutdown().await;
}

async fn edit_and_delete(backend: Backend) {
    let t = Chat::start(backend).await;
    let (owner, member, other) = (user(), user(), user());
    let id = t.group(&owner, &[&member, &other]).await.id;
    let seq = t.send(&member, &id, "e-1", "typo").await.message.unwrap().seq;
    let edit =
        |content: &str| EditRequest { conversation_id: id.clone(), seq, content: content.into(), ..Default::default() };
    assert_eq!(t.code::<chat::Edit>(&other, edit("mine now")).await, 403);
    assert_eq!(t.code::<chat::Edit>(&owner, edit("mine now")).await, 403, "not even the owner edits others' words");
    let edited = t.ok::<chat::Edit>(&member, edit("fixed")).await.message.unwrap();
    assert_eq!(edited.content, "fixed");
    assert!(edited.edited_at_ms.is_some());

    let delete = |seq| DeleteMessageRequest { conversation_id: id.clone(), seq };
    assert_eq!(t.code::<chat::DeleteMessage>(&other, delete(seq)).await, 403);
    t.ok::<chat::DeleteMessage>(&owner, delete(seq)).await;
    t.ok::<chat::DeleteMessage>(&owner, delete(seq)).await;
    assert_eq!(t.code::<chat::Edit>(&member, edit("again")).await, 404);
    assert_eq!(t.code::<chat::DeleteMessage>(&owner, delete(999)).await, 404);
    let own = t.send(&other, &id, "e-2", "oops").await.message.unwrap().seq;
    t.ok::<chat::DeleteMessage>(&other, delete(own)).await;

    let history = t.history(&member, &id, None, None, 50).await;
    assert_eq!(history.messages.len(), 2);
    assert!(history.messages.iter().all(|m| m.deleted && m.content.is_empty()));
    // created, sent, edited, deleted, sent, deleted: every change took a seq.
    assert_eq!(t.ok::<chat::Get>(&member, get(&id)).await.conversation.unwrap().last_seq, 6);
    t.mesh.shutdown().await;
}

async fn history_pages_both_ways(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b) = (user(), user());
    let id = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await.conversation.unwrap().id;
    for i in 0..25 {
        t.send(&a, &id, &format!("h-{i}"), &format!("{i}")).await;
    }
    // Messages are seqs 2..=26.
    let newest = t.history(&b, &id, None, None, 10).await;
    assert_eq!(seqs(&newest), (17..=26).collect::<Vec<_>>());
    assert_eq!(newest.next_cursor, Some(17));
    let older = t.history(&b, &id, Some(17), None, 10).await;
    assert_eq!(seqs(&older), (7..=16).collect::<Vec<_>>());
    let oldest = t.history(&b, &id, older.next_cursor, None, 10).await;
    assert_eq!(seqs(&oldest), (2..=6).collect::<Vec<_>>());
    assert_eq!(oldest.next_cursor, None);

    let first = t.history(&b, &id, None, Some(0), 10).await;
    assert_eq!(seqs(&first), (2..=11).collect::<Vec<_>>());
    assert_eq!(first.next_cursor, Some(11));
    let next = t.history(&b, &id, None, first.next_cursor, 10).await;
    assert_eq!(seqs(&next), (12..=21).collect::<Vec<_>>());
    let last = t.history(&b, &id, None, next.next_cursor, 10).await;
    assert_eq!((seqs(&last), last.next_cursor), ((22..=26).collect::<Vec<_>>(), None));
    assert_eq!(t.history(&b, &id, None, None, 50).await.messages.len(), 25);

    let bad = |before, after, limit| HistoryRequest { conversation_id: id.clone(), before, after, limit };
    assert_eq!(t.code::<chat::History>(&b, bad(Some(5), Some(1), None)).await, 422);
    assert_eq!(t.code::<chat::History>(&b, bad(None, None, Some(0))).await, 422);
    assert_eq!(t.code::<chat::History>(&b, bad(None, None, Some(101))).await, 422);
    assert_eq!(t.code::<chat::History>(&user(), bad(None, None, None)).await, 404);
    t.mesh.shutdown().await;
}

async fn read_receipts_and_unread_counts(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b, c) = (user(), user(), user());
    let direct = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await.conversation.unwrap().id;
    let group = t.group(&c, &[&b]).await.id;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(t.send(&a, &direct, &format!("r-{i}"), "ping").await.message.unwrap().seq);
    }
    t.send(&b, &direct, "mine", "own messages are never unread").await;
    tokio::time::sleep(Duration::from_millis(5)).await; // distinct activity times
    t.send(&c, &group, "g-1", "newest activity").await;

    let list = t.ok::<chat::List>(&b, ListRequest::default()).await;
    let ids: Vec<&str> = list.conversations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [group.as_str(), direct.as_str()], "newest activity first");
    assert_eq!(list.next_cursor, "");
    let unread: HashMap<&str, i64> = list.conversations.iter().map(|c| (c.id.as_str(), c.unread_count)).collect();
    assert_eq!((unread[direct.as_str()], unread[group.as_str()]), (5, 1));
    let last: Vec<&str> =
        list.conversations.iter().map(|c| c.last_message.as_ref().unwrap().content.as_str()).collect();
    assert_eq!(last, ["newest activity", "own messages are never unread"], "each conversation's own last message");

    let read = |seq| MarkReadRequest { conversation_id: direct.clone(), seq };
    let receipt = t.ok::<chat::MarkRead>(&b, read(sent[2])).await;
    assert_eq!(receipt.read_seq, sent[2]);
    let mut recipients = receipt.recipients.clone();
    recipients.sort();
    let mut pair = vec![a.clone(), b.clone()];
    pair.sort();
    assert_eq!(recipients, pair);
    assert_eq!(t.ok::<chat::MarkRead>(&b, read(1)).await.read_seq, sent[2], "never backwards");
    let view = t.ok::<chat::Get>(&b, get(&direct)).await.conversation.unwrap();
    assert_eq!((view.read_seq, view.unread_count), (sent[2], 2));
    assert_eq!(t.ok::<chat::MarkRead>(&b, read(i64::MAX)).await.read_seq, view.last_seq, "capped at the last seq");
    assert_eq!(t.ok::<chat::Get>(&b, get(&direct)).await.conversation.unwrap().unread_count, 0);
    assert_eq!(t.code::<chat::MarkRead>(&c, read(1)).await, 404);

    // Paging the list one at a time reaches both, in the same order.
    let page = t.ok::<chat::List>(&b, ListRequest { cursor: String::new(), limit: Some(1) }).await;
    assert_eq!(page.conversations[0].id, group);
    let rest = t.ok::<chat::List>(&b, ListRequest { cursor: page.next_cursor, limit: Some(1) }).await;
    assert_eq!(rest.conversations[0].id, direct);
    assert_eq!(rest.next_cursor, "");
    t.mesh.shutdown().await;
}

async fn resume_replays_missed_events(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b, late) = (user(), user(), user());
    let busy = t.group(&a, &[&b]).await.id;
    let quiet = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await.conversation.unwrap().id;
    let sends = (0..1005).map(|i| t.call::<chat::Send>(&a, text(&busy, &format!("t-{i}"), "flood")));
    for reply in join_all(sends).await {
        reply.unwrap();
    }
    t.send(&a, &quiet, "q-1", "one").await;
    t.send(&a, &quiet, "q-2", "two").await;
    let add = AddMemberRequest { conversation_id: busy.clone(), user_id: late.clone(), role: None };
    let joined = t.ok::<chat::AddMember>(&a, add).await.member.unwrap().joined_seq;
    t.send(&a, &busy, "after-join", "welcome").await;

    let known = HashMap::from([(busy.clone(), 1), (quiet.clone(), 2), ("gone-conversation".to_owned(), 7)]);
    let resumed = t.ok::<chat::Resume>(&b, ResumeRequest { conversations: known }).await;
    assert_eq!(resumed.gone, ["gone-conversation"]);
    let by_id: HashMap<&str, &ResumedConversation> =
        resumed.conversations.iter().map(|c| (c.conversation_id.as_str(), c)).collect();
    let flood = by_id[busy.as_str()];
    // 1005 sends, the join and one more after seq 1: the newest 1,000 come, gap-free.
    assert!(flood.truncated);
    assert_eq!(flood.events.len(), 1000);
    let last = 1 + 1005 + 2;
    assert_eq!(flood.from_seq, last - 999);
    assert!(flood.events.iter().zip(flood.from_seq..).all(|(e, seq)| e.seq == seq));
    let small = by_id[quiet.as_str()];
    assert!(!small.truncated);
    assert_eq!(small.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert!(matches!(&small.events[0].event, Some(Event::MessageCreated(m)) if m.content == "two"));

    // A member who joined meanwhile gets the conversation from the joining event on.
    let newcomer = t.ok::<chat::Resume>(&late, ResumeRequest::default()).await;
    assert_eq!(newcomer.conversations.len(), 1);
    let events = &newcomer.conversations[0].events;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [joined, joined + 1]);
    assert!(matches!(&events[0].event, Some(Event::MemberAdded(m)) if m.user_id == late));
    t.mesh.shutdown().await;
}

/// The events on the conversation's stream subject, read until `done` says enough.
async fn stream_events(
    t: &Chat,
    conversation: &str,
    done: impl Fn(&[(String, ChatEvent)]) -> bool,
) -> Vec<(String, ChatEvent)> {
    let js = jetstream::new(t.mesh.client().await);
    let stream = js.get_stream(streams::CHAT_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config { filter_subject: streams::chat_events(conversation), ..Default::default() })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(&got) {
        let message = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), messages.next())
            .await
            .unwrap_or_else(|_| panic!("the stream had only {} events", got.len()))
            .unwrap()
            .unwrap();
        let id = message.headers.as_ref().and_then(|h| h.get(headers::MSG_ID)).unwrap().as_str().to_owned();
        got.push((id, ChatEvent::decode(message.payload.as_ref()).unwrap()));
        message.ack().await.unwrap();
    }
    got
}

async fn events_reach_the_chat_stream(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b, c) = (user(), user(), user());
    let id = t.group(&a, &[&b]).await.id;
    t.send(&b, &id, "s-1", "hello").await;
    t.ok::<chat::AddMember>(&a, AddMemberRequest { conversation_id: id.clone(), user_id: c.clone(), role: None }).await;
    t.ok::<chat::RemoveMember>(&a, RemoveMemberRequest { conversation_id: id.clone(), user_id: b.clone() }).await;
    let events = stream_events(&t, &id, |got| got.len() == 4).await;
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [format!("{id}:1"), format!("{id}:2"), format!("{id}:3"), format!("{id}:4")]);
    assert!(matches!(&events[0].1.event, Some(Event::ConversationCreated(_))));
    assert!(matches!(&events[1].1.event, Some(Event::MessageCreated(m)) if m.content == "hello"));
    let recipients = |i: usize| {
        let mut r = events[i].1.recipients.clone();
        r.sort();
        r
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    // The joiner is told of their joining but not of what came before; the removed is told.
    assert!(recipients(1).contains(&a) && !recipients(1).contains(&c), "c joined after seq 2");
    assert!(recipients(2).contains(&a) && recipients(2).contains(&c));
    assert_eq!(recipients(3), sorted(vec![&a, &b, &c]));
    t.mesh.shutdown().await;
}

async fn deleted_users_leave_their_conversations(backend: Backend) {
    let t = Chat::start(backend).await;
    let (gone, admin, member, friend) = (user(), user(), user(), user());
    let group = t.group(&gone, &[&member, &admin]).await.id;
    let make_admin = ChangeRoleRequest { conversation_id: group.clone(), user_id: admin.clone(), role: "admin".into() };
    t.ok::<chat::ChangeRole>(&gone, make_admin).await;
    let direct =
        t.ok::<chat::OpenDirect>(&gone, OpenDirectRequest { user_id: friend.clone() }).await.conversation.unwrap().id;
    let solo = t.group(&gone, &[]).await.id;

    // The user worker's event, as its outbox publishes it.
    let js = jetstream::new(t.mesh.client().await);
    let event = UserEvent { user_id: gone.clone(), username: "gone".into(), ..Default::default() };
    let message = jetstream::message::PublishMessage::build()
        .payload(event.encode_to_vec().into())
        .message_id(format!("user:test-{gone}"));
    js.send_publish(user::Deleted::SUBJECT, message).await.unwrap().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let view = t.ok::<chat::Get>(&admin, get(&group)).await.conversation.unwrap();
        if view.member_count == 2 {
            break view;
        }
        assert!(Instant::now() < deadline, "the deleted user is still a member");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(view.my_role, "owner", "the oldest admin inherits the group");
    assert!(view.members.iter().all(|m| m.user_id != gone));
    let direct_view = t.ok::<chat::Get>(&friend, get(&direct)).await.conversation.unwrap();
    assert_eq!(direct_view.member_count, 1);
    assert_eq!(t.code::<chat::Get>(&gone, get(&solo)).await, 404);
    assert!(t.ok::<chat::List>(&gone, ListRequest::default()).await.conversations.is_empty());
    // The solo group went with its only member: its deletion event reached the stream.
    let deleted =
        |e: &ChatEvent| matches!(&e.event, Some(Event::ConversationDeleted(d)) if d.member_ids == [gone.clone()]);
    let solo_events = stream_events(&t, &solo, |got| got.last().is_some_and(|(_, e)| deleted(e))).await;
    assert_eq!(solo_events.last().unwrap().1.recipients, std::slice::from_ref(&gone));
    t.mesh.shutdown().await;
}

/// Search finds the caller's messages only, best match first, and reflects edits and deletions
/// as soon as they are answered.
async fn search_finds_members_messages_best_first(backend: Backend) {
    let t = Chat::start(backend).await;
    let (alice, bob, eve) = (user(), user(), user());
    let ours = t.group(&alice, &[&bob]).await.id;
    let theirs = t.group(&eve, &[]).await.id;
    let once = t.send(&alice, &ours, "a-1", "a fox crossed the long road near the café").await.message.unwrap();
    let thrice = t.send(&bob, &ours, "b-1", "Fox! FOX, fox.").await.message.unwrap();
    t.send(&bob, &ours, "b-2", "nothing to see").await;
    t.send(&eve, &theirs, "e-1", "a fox of my own").await;
    let search = |q: &str, conversation: Option<&str>, cursor: &str, limit: u32| SearchRequest {
        q: q.into(),
        conversation_id: conversation.map(Into::into),
        cursor: cursor.into(),
        limit: Some(limit),
    };
    let seqs = |reply: &SearchReply| reply.messages.iter().map(|m| m.seq).collect::<Vec<_>>();

    let found = t.ok::<chat::Search>(&alice, search("fox", None, "", 10)).await;
    assert_eq!(seqs(&found), [thrice.seq, once.seq], "the denser match first, and not eve's");
    assert_eq!(found.next_cursor, "");
    let prefix_and_accents = t.ok::<chat::Search>(&bob, search("CAFE cross", Some(&ours), "", 10)).await;
    assert_eq!(seqs(&prefix_and_accents), [once.seq], "every word, as a prefix, accents and case folded");
    assert!(t.ok::<chat::Search>(&eve, search("crossed", None, "", 10)).await.messages.is_empty());
    assert_eq!(t.code::<chat::Search>(&eve, search("fox", Some(&ours), "", 10)).await, 404);

    let first = t.ok::<chat::Search>(&alice, search("fox", None, "", 1)).await;
    assert_eq!((seqs(&first), first.next_cursor.as_str()), (vec![thrice.seq], "1"));
    let second = t.ok::<chat::Search>(&alice, search("fox", None, &first.next_cursor, 1)).await;
    assert_eq!((seqs(&second), second.next_cursor.as_str()), (vec![once.seq], ""));

    let edit = EditRequest {
        conversation_id: ours.clone(),
        seq: thrice.seq,
        content: "a badger now".into(),
        ..Default::default()
    };
    t.ok::<chat::Edit>(&bob, edit).await;
    assert_eq!(seqs(&t.ok::<chat::Search>(&alice, search("fox", None, "", 10)).await), [once.seq]);
    assert_eq!(seqs(&t.ok::<chat::Search>(&alice, search("badger", None, "", 10)).await), [thrice.seq]);
    t.ok::<chat::DeleteMessage>(&alice, DeleteMessageRequest { conversation_id: ours.clone(), seq: once.seq }).await;
    assert!(t.ok::<chat::Search>(&alice, search("fox", None, "", 10)).await.messages.is_empty());

    for (bad, field) in [("", "q"), ("a b c", "q"), ("fox", "cursor")] {
        let request = search(bad, None, if field == "cursor" { "nope" } else { "" }, 10);
        let error = t.call::<chat::Search>(&alice, request).await.unwrap_err();
        assert_eq!((error.code.as_u16(), error.to_body().fields.contains_key(field)), (422, true), "{bad:?}");
    }
    t.mesh.shutdown().await;
}

/// Only members of a conversation where an attachment was sent may read it; only its uploader
/// may send it; it goes with the last message that carried it.
/// A PNG upload stored as the gateway stores one: named by its id, the uploader in its metadata.
async fn upload(store: &async_nats::jetstream::object_store::ObjectStore, id: &str, uploader: &str, bytes: &[u8]) {
    let meta = async_nats::jetstream::object_store::ObjectMetadata {
        name: id.to_owned(),
        metadata: HashMap::from([
            (streams::ATTACHMENT_UPLOADER.to_owned(), uploader.to_owned()),
            (streams::ATTACHMENT_TYPE.to_owned(), "image/png".to_owned()),
        ]),
        ..Default::default()
    };
    store.put(meta, &mut &bytes[..]).await.unwrap();
}

async fn attachment_access_follows_the_messages_that_carry_it(backend: Backend) {
    let t = Chat::start(backend).await;
    let (alice, bob, eve) = (user(), user(), user());
    let ours = t.group(&alice, &[&bob]).await.id;
    let gateway = t.mesh.client_as(soulchat_subjects::broker::Identity::Gateway).await;
    let store = jetstream::new(gateway).get_object_store(streams::ATTACHMENTS_BUCKET).await.unwrap();
    let id = user();
    upload(&store, &id, &alice, b"bytes").await;
    let access = || AttachmentAccessRequest { attachment_id: id.clone() };
    let image = |client_id: &str| SendRequest {
        conversation_id: ours.clone(),
        client_id: client_id.into(),
        kind: "image".into(),
        attachment_id: Some(id.clone()),
        ..Default::default()
    };

    assert_eq!(t.code::<chat::AttachmentAccess>(&bob, access()).await, 404, "not sent yet");
    let error = t.call::<chat::Send>(&bob, image("b-1")).await.unwrap_err();
    assert_eq!((error.code.as_u16(), error.fields["attachment_id"][0].as_str()), (422, "not found"));
    let first = t.ok::<chat::Send>(&alice, image("a-1")).await.message.unwrap();
    assert_eq!(first.attachment_id.as_deref(), Some(id.as_str()));
    let second = t.ok::<chat::Send>(&alice, image("a-2")).await.message.unwrap();
    t.ok::<chat::AttachmentAccess>(&bob, access()).await;
    assert_eq!(t.code::<chat::AttachmentAccess>(&eve, access()).await, 404);

    t.ok::<chat::DeleteMessage>(&alice, DeleteMessageRequest { conversation_id: ours.clone(), seq: first.seq }).await;
    t.ok::<chat::AttachmentAccess>(&bob, access()).await;
    assert!(!store.info(&id).await.unwrap().deleted, "the second message still carries it");
    t.ok::<chat::DeleteMessage>(&alice, DeleteMessageRequest { conversation_id: ours.clone(), seq: second.seq }).await;
    assert_eq!(t.code::<chat::AttachmentAccess>(&bob, access()).await, 404);
    assert!(store.info(&id).await.unwrap().deleted, "gone with the last message");

    // A report resolved by deleting the message takes the attachment with it too.
    let reported = user();
    upload(&store, &reported, &alice, b"again").await;
    let third = SendRequest { attachment_id: Some(reported.clone()), ..image("a-3") };
    let third = t.ok::<chat::Send>(&alice, third).await.message.unwrap();
    let report = ReportRequest { conversation_id: ours.clone(), seq: third.seq, reason: "spam".into() };
    let report = t.ok::<chat::Report>(&bob, report).await.report.unwrap();
    let resolve = ResolveReportRequest { id: report.id, action: "delete".into(), ..Default::default() };
    t.ok::<chat::ResolveReport>(&eve, resolve).await;
    assert!(store.info(&reported).await.unwrap().deleted, "gone with the reported message");
    t.mesh.shutdown().await;
}

each_backend!(
    attachment_access_follows_the_messages_that_carry_it,
    search_finds_members_messages_best_first,
    direct_conversations_are_one_per_pair,
    group_roles_and_permissions,
    sends_are_idempotent_and_validated,
    concurrent_sends_take_every_seq_once,
    edit_and_delete,
    history_pages_both_ways,
    read_receipts_and_unread_counts,
    resume_replays_missed_events,
    events_reach_the_chat_stream,
    deleted_users_leave_their_conversations,
);
