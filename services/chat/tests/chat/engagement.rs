//! What members do to messages — reactions, pins, mentions, threads — as conversation events.

use soulchat_subjects::chat::messages::chat_event::Event;
use soulchat_subjects::chat::{self, messages::*};
use soulchat_testkit::{Backend, each_backend};

use super::{Chat, user};

each_backend!(
    reactions_are_counted_idempotent_and_logged,
    pins_take_a_role_in_groups_and_are_logged,
    mentions_are_stored_with_the_message,
    thread_replies_stay_out_of_the_main_history
);

/// The events resume replays to `user` in `conversation`, picked by `pick`.
async fn replayed<T>(t: &Chat, user: &str, conversation: &str, pick: impl Fn(&Event) -> Option<T>) -> Vec<T> {
    let resumed = t.ok::<chat::Resume>(user, ResumeRequest::default()).await;
    let events = &resumed.conversations.iter().find(|c| c.conversation_id == conversation).unwrap().events;
    events.iter().filter_map(|e| e.event.as_ref().and_then(&pick)).collect()
}

fn reactions(message: &Message) -> Vec<(&str, u32, bool)> {
    message.reactions.iter().map(|r| (r.emoji.as_str(), r.count, r.me)).collect()
}

async fn reactions_are_counted_idempotent_and_logged(backend: Backend) {
    let t = Chat::start(backend).await;
    let (owner, member, outsider) = (user(), user(), user());
    let id = t.group(&owner, &[&member]).await.id;
    let seq = t.send(&owner, &id, "r-1", "react to me").await.message.unwrap().seq;
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
    assert_eq!(
        reactions(list.conversations[0].last_message.as_ref().unwrap()),
        [("👍", 2, true), (":tada:", 1, false)]
    );
    let found = t.ok::<chat::Search>(&member, SearchRequest { q: "react".into(), ..Default::default() }).await;
    assert_eq!(reactions(&found.messages[0]), [("👍", 2, true), (":tada:", 1, false)], "search answers too");

    let removed = t.ok::<chat::RemoveReaction>(&member, react("👍")).await.message.unwrap();
    assert_eq!(reactions(&removed), [("👍", 1, false), (":tada:", 1, false)]);
    let before = t.last_seq(&owner, &id).await;
    t.ok::<chat::RemoveReaction>(&member, react("👍")).await;
    assert_eq!(t.last_seq(&owner, &id).await, before, "removing twice records nothing");

    // Each change is an event with its own seq, replayed by resume.
    let changes = replayed(&t, &member, &id, |e| match e {
        Event::ReactionChanged(r) => Some((r.message_seq, r.emoji.clone(), r.added)),
        _ => None,
    })
    .await;
    let expected = [(seq, "👍", true), (seq, "👍", true), (seq, ":tada:", true), (seq, "👍", false)];
    assert_eq!(changes, expected.map(|(s, e, a)| (s, e.to_owned(), a)));

    // Bad input names the field; strangers learn nothing.
    for bad in ["", "👍👍", "thumbs", ":not a code:", ":this_shortcode_is_much_too_long_ok:"] {
        assert_eq!(
            t.refused::<chat::AddReaction>(&member, react(bad)).await,
            (422, vec!["emoji".to_owned()]),
            "{bad:?}"
        );
    }
    assert_eq!(t.refused::<chat::AddReaction>(&outsider, react("👍")).await.0, 404);
    let missing = ReactionRequest { conversation_id: id.clone(), seq: 999, emoji: "👍".into() };
    assert_eq!(t.refused::<chat::AddReaction>(&member, missing).await, (404, vec!["message".to_owned()]));

    // At most 20 distinct emoji on a message; one already there may still be used.
    let full = t.send(&member, &id, "r-2", "full").await.message.unwrap().seq;
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

async fn pins_take_a_role_in_groups_and_are_logged(backend: Backend) {
    let t = Chat::start(backend).await;
    let (owner, admin, member, outsider) = (user(), user(), user(), user());
    let id = t.group(&owner, &[&admin, &member]).await.id;
    let role = ChangeRoleRequest { conversation_id: id.clone(), user_id: admin.clone(), role: "admin".into() };
    t.ok::<chat::ChangeRole>(&owner, role).await;
    let first = t.send(&member, &id, "p-1", "pin me").await.message.unwrap().seq;
    let second = t.send(&member, &id, "p-2", "and me").await.message.unwrap().seq;
    let pin = |seq| PinRequest { conversation_id: id.clone(), seq };
    let pins = || PinsRequest { conversation_id: id.clone() };

    assert_eq!(t.refused::<chat::Pin>(&member, pin(first)).await, (403, vec!["conversation".to_owned()]));
    assert_eq!(t.refused::<chat::Pin>(&outsider, pin(first)).await.0, 404);
    assert_eq!(t.refused::<chat::Pins>(&outsider, pins()).await.0, 404);
    assert_eq!(t.refused::<chat::Pin>(&admin, pin(999)).await, (404, vec!["message".to_owned()]));
    let pinned = t.ok::<chat::Pin>(&admin, pin(first)).await.pin.unwrap();
    assert_eq!((pinned.message.unwrap().content.as_str(), pinned.pinned_by_id.as_str()), ("pin me", admin.as_str()));
    let before = t.last_seq(&owner, &id).await;
    let again = t.ok::<chat::Pin>(&owner, pin(first)).await.pin.unwrap();
    assert_eq!(again.pinned_by_id, admin, "pinning twice keeps the first pin");
    assert_eq!(t.last_seq(&owner, &id).await, before, "and records nothing");
    t.ok::<chat::Pin>(&owner, pin(second)).await;
    let listed = t.ok::<chat::Pins>(&member, pins()).await.pins;
    let seqs: Vec<i64> = listed.iter().map(|p| p.message.as_ref().unwrap().seq).collect();
    assert_eq!(seqs, [second, first], "newest pin first");

    assert_eq!(t.refused::<chat::Unpin>(&member, pin(first)).await.0, 403);
    t.ok::<chat::Unpin>(&owner, pin(first)).await;
    let before = t.last_seq(&owner, &id).await;
    t.ok::<chat::Unpin>(&owner, pin(first)).await;
    assert_eq!(t.last_seq(&owner, &id).await, before, "unpinning twice records nothing");
    // A deleted message is no longer pinned.
    t.ok::<chat::DeleteMessage>(&member, DeleteMessageRequest { conversation_id: id.clone(), seq: second }).await;
    assert!(t.ok::<chat::Pins>(&member, pins()).await.pins.is_empty());

    let changes = replayed(&t, &member, &id, |e| match e {
        Event::PinChanged(p) => Some((p.message_seq, p.pinned)),
        _ => None,
    })
    .await;
    assert_eq!(changes, [(first, true), (second, true), (first, false)]);

    // In a direct conversation either member pins; a conversation holds at most 50 pins.
    let (a, b) = (user(), user());
    let direct = t.ok::<chat::OpenDirect>(&a, OpenDirectRequest { user_id: b.clone() }).await.conversation.unwrap().id;
    for i in 0..51 {
        let seq = t.send(&a, &direct, &format!("d-{i}"), "pinnable").await.message.unwrap().seq;
        let request = PinRequest { conversation_id: direct.clone(), seq };
        if i < 50 {
            t.ok::<chat::Pin>(if i % 2 == 0 { &a } else { &b }, request).await;
        } else {
            assert_eq!(t.refused::<chat::Pin>(&b, request).await, (422, vec!["pins".to_owned()]));
        }
    }
    t.mesh.shutdown().await;
}

async fn mentions_are_stored_with_the_message(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b, c) = (user(), user(), user());
    let id = t.group(&a, &[&b, &c]).await.id;
    let send = |client_id: &str, mention_ids: Vec<String>| SendRequest {
        conversation_id: id.clone(),
        client_id: client_id.into(),
        content: "hello you".into(),
        mention_ids,
        ..Default::default()
    };
    let sent = t.ok::<chat::Send>(&a, send("m-1", vec![b.clone(), c.clone()])).await.message.unwrap();
    assert_eq!(sent.mention_ids, [b.clone(), c.clone()]);
    let history = HistoryRequest { conversation_id: id.clone(), ..Default::default() };
    assert_eq!(t.ok::<chat::History>(&b, history.clone()).await.messages[0].mention_ids, [b.clone(), c.clone()]);

    let edit = EditRequest {
        conversation_id: id.clone(),
        seq: sent.seq,
        content: "only you".into(),
        mention_ids: vec![c.clone()],
    };
    assert_eq!(t.ok::<chat::Edit>(&a, edit).await.message.unwrap().mention_ids, [c.as_str()]);
    assert_eq!(t.ok::<chat::History>(&b, history.clone()).await.messages[0].mention_ids, [c.as_str()]);
    let events = replayed(&t, &c, &id, |e| match e {
        Event::MessageCreated(m) | Event::MessageEdited(m) => Some(m.mention_ids.clone()),
        _ => None,
    })
    .await;
    assert_eq!(events, [vec![b.clone(), c.clone()], vec![c.clone()]], "the events carry them");

    let too_many = (0..51).map(|_| user()).collect();
    assert_eq!(t.refused::<chat::Send>(&a, send("m-2", too_many)).await, (422, vec!["mentions".to_owned()]));
    assert_eq!(
        t.refused::<chat::Send>(&a, send("m-3", vec!["no.dots".into()])).await,
        (422, vec!["mentions".to_owned()])
    );

    t.ok::<chat::DeleteMessage>(&a, DeleteMessageRequest { conversation_id: id.clone(), seq: sent.seq }).await;
    assert!(t.ok::<chat::History>(&b, history).await.messages[0].mention_ids.is_empty(), "gone with the content");
    t.mesh.shutdown().await;
}

async fn thread_replies_stay_out_of_the_main_history(backend: Backend) {
    let t = Chat::start(backend).await;
    let (a, b, c, outsider) = (user(), user(), user(), user());
    let id = t.group(&a, &[&b, &c]).await.id;
    let root = t.send(&a, &id, "t-0", "a topic").await.message.unwrap();
    let reply = |client_id: &str, thread_root: i64| SendRequest {
        conversation_id: id.clone(),
        client_id: client_id.into(),
        content: "a reply".into(),
        thread_root: Some(thread_root),
        ..Default::default()
    };
    let first = t.ok::<chat::Send>(&b, reply("t-1", root.seq)).await.message.unwrap();
    assert_eq!(first.thread_root, Some(root.seq));
    t.ok::<chat::Send>(&b, reply("t-2", root.seq)).await;
    let last = t.ok::<chat::Send>(&c, reply("t-3", root.seq)).await.message.unwrap();
    let after = t.send(&a, &id, "t-4", "back in the main line").await.message.unwrap();

    let history = HistoryRequest { conversation_id: id.clone(), ..Default::default() };
    let main = t.ok::<chat::History>(&c, history.clone()).await.messages;
    assert_eq!(main.iter().map(|m| m.seq).collect::<Vec<_>>(), [root.seq, after.seq], "replies are not in it");
    let summary = main[0].thread.unwrap();
    assert_eq!((summary.reply_count, summary.last_reply_at_ms), (3, last.created_at_ms));
    assert!(main[1].thread.is_none());

    // The thread pages like history.
    let page = |before: Option<i64>| ThreadRequest {
        conversation_id: id.clone(),
        root: root.seq,
        before,
        limit: Some(2),
        ..Default::default()
    };
    let newest = t.ok::<chat::Thread>(&c, page(None)).await;
    assert_eq!(newest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [first.seq + 1, last.seq]);
    let older = t.ok::<chat::Thread>(&c, page(newest.next_cursor)).await;
    assert_eq!((older.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), older.next_cursor), (vec![first.seq], None));

    // The event of c's reply names who took part before it.
    let mut before_c = vec![a.clone(), b.clone()];
    before_c.sort();
    let resumed = t.ok::<chat::Resume>(&a, ResumeRequest::default()).await;
    let event = resumed.conversations[0].events.iter().find(|e| e.seq == last.seq).unwrap();
    assert_eq!(event.thread_participant_ids, before_c);

    // Bad roots name the field; strangers and unknown roots are 404.
    let refused = |code: u16| (code, vec!["thread_root".to_owned()]);
    assert_eq!(t.refused::<chat::Send>(&a, reply("t-5", 999)).await, refused(422));
    assert_eq!(t.refused::<chat::Send>(&a, reply("t-6", first.seq)).await, refused(422), "no threads in threads");
    assert_eq!(t.refused::<chat::Send>(&a, reply("t-7", 0)).await, refused(422));
    assert_eq!(t.refused::<chat::Thread>(&outsider, page(None)).await.0, 404);
    let unknown = ThreadRequest { conversation_id: id.clone(), root: 999, ..Default::default() };
    assert_eq!(t.refused::<chat::Thread>(&c, unknown).await, (404, vec!["message".to_owned()]));

    // A deleted reply no longer counts.
    t.ok::<chat::DeleteMessage>(&c, DeleteMessageRequest { conversation_id: id.clone(), seq: last.seq }).await;
    let main = t.ok::<chat::History>(&c, history).await.messages;
    assert_eq!(main[0].thread.unwrap().reply_count, 2);
    t.mesh.shutdown().await;
}
