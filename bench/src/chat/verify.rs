//! The end-of-run check of the chat scenario against history: every acknowledged message is
//! stored under the seq its ack named, none is stored twice, and every other member's socket
//! got it exactly once. Acknowledged means durable, so any miss here is a real loss.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};

use super::Conversation;
use super::load::Received;
use crate::api::{Api, User};
use crate::report::Check;

pub async fn check(
    api: &Api,
    users: &[User],
    conversations: &[&Conversation],
    received: &[Received],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Check>> {
    eprintln!("chat: reading back the history of {} conversations", conversations.len());
    let histories: Vec<Vec<(i64, String)>> = futures::stream::iter(conversations)
        .map(|c| api.history(&users[c.members[0]], &c.id))
        .buffered(8)
        .try_collect()
        .await?;

    // Acknowledged sends per conversation: (seq, client_id, sender).
    let mut acked: HashMap<&str, Vec<(i64, &str, usize)>> = HashMap::new();
    for (sender, r) in received.iter().enumerate() {
        for a in &r.acked {
            acked.entry(a.conversation.as_str()).or_default().push((a.seq, a.client_id.as_str(), sender));
        }
    }
    // Seqs each socket got, per conversation, sorted to find repeats and to search.
    let delivered: Vec<HashMap<&str, Vec<i64>>> = received
        .iter()
        .map(|r| {
            r.delivered
                .iter()
                .map(|(c, seqs)| {
                    let mut seqs = seqs.clone();
                    seqs.sort_unstable();
                    (c.as_str(), seqs)
                })
                .collect()
        })
        .collect();

    let (mut total, mut lost, mut stored_twice, mut unacked, mut missing) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_loss = None;
    for (conversation, history) in conversations.iter().zip(&histories) {
        let by_seq: HashMap<i64, &str> = history.iter().map(|(seq, id)| (*seq, id.as_str())).collect();
        let mut seen = HashSet::new();
        stored_twice += history.iter().filter(|(_, id)| !seen.insert(id.as_str())).count() as u64;
        let sends = acked.get(conversation.id.as_str()).map(Vec::as_slice).unwrap_or_default();
        let acked_ids: HashSet<&str> = sends.iter().map(|(_, id, _)| *id).collect();
        unacked += history.iter().filter(|(_, id)| !acked_ids.contains(id.as_str())).count() as u64;
        for &(seq, client_id, sender) in sends {
            total += 1;
            if by_seq.get(&seq) != Some(&client_id) {
                lost += 1;
                first_loss.get_or_insert(format!("{client_id} acked as seq {seq} of {}", conversation.id));
            }
            for &member in conversation.members.iter().filter(|&&m| m != sender) {
                let got = delivered[member].get(conversation.id.as_str());
                if got.is_none_or(|seqs| seqs.binary_search(&seq).is_err()) {
                    missing += 1;
                }
            }
        }
    }
    let twice: u64 = delivered
        .iter()
        .flat_map(|per| per.values())
        .map(|seqs| seqs.windows(2).filter(|w| w[0] == w[1]).count() as u64)
        .sum();
    let closed = received.iter().filter(|r| r.closed.is_some()).count();
    if unacked > 0 {
        notes.push(format!("{unacked} stored messages were never acknowledged (their sends failed or were cut off)"));
    }
    if let Some(why) = received.iter().find_map(|r| r.closed.as_deref()) {
        notes.push(format!("{closed} sockets were closed by the server before the end; first: {why}"));
    }
    Ok(vec![
        Check {
            name: "nothing acknowledged was lost",
            passed: lost == 0,
            detail: match first_loss {
                Some(first) => format!("{lost} of {total} acknowledged messages missing from history; first: {first}"),
                None => format!("all {total} acknowledged messages are in history under their seq"),
            },
        },
        Check {
            name: "nothing was stored twice",
            passed: stored_twice == 0,
            detail: format!("{stored_twice} repeated client_ids in history"),
        },
        Check {
            name: "nothing was delivered twice",
            passed: twice == 0,
            detail: format!("{twice} repeated deliveries to a socket"),
        },
        Check {
            name: "every acknowledged message reached every other member",
            passed: missing == 0,
            detail: format!("{missing} deliveries missing ({closed} sockets closed early)"),
        },
    ])
}
