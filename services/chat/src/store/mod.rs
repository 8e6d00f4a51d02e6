//! The chat database, behind one type so handlers never write SQL: conversations, members,
//! messages, reactions, pins, and the per-conversation event log with its outbox, one file each.
//!
//! Every change to a conversation appends an event under the conversation's next `seq`
//! ([`Store::next_seq`], or [`Store::send_context`] for a batch of sends, then [`Store::record`]) in the
//! transaction that makes the change, so the log and the tables never disagree; the log is also
//! the relay's queue (see `events`).
//!
//! Reads take `&mut impl Reads` (a read connection, or the write transaction they belong to);
//! writes take the [`WriteTx`](soulchat_runtime::WriteTx). Whatever records an event registers
//! the relay's wake in that transaction, so its commit sets the event on its way.

mod attachments;
mod blocks;
mod conversations;
mod events;
mod members;
mod messages;
mod pins;
mod reactions;
mod reports;
mod search;
mod sends;

use soulchat_runtime::Database;
use soulchat_runtime::relay::Relay;

pub use attachments::AttachmentUse;
pub use conversations::ConversationRow;
pub use members::MemberRow;
pub use messages::MessageRow;
pub use pins::PinRow;
pub use reports::{OPEN, ReportRow};

/// Rows per multi-row statement at most (13 parameters per message row stay far below both
/// backends' limits).
const MAX_ROWS: usize = 256;

/// Splits `rows` into chunks whose sizes are powers of two (largest first, at most
/// [`MAX_ROWS`]): a multi-row statement then comes in a few shapes that each connection's
/// statement cache keeps, instead of a new one to prepare (a round trip on MySQL) for every
/// batch size.
pub fn reusable_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let at_most = rest.len().min(MAX_ROWS);
        let (chunk, tail) = rest.split_at(1 << at_most.ilog2());
        rest = tail;
        Some(chunk)
    })
}

/// A query from fixed pieces (a shared column list and a condition).
fn sql(parts: &[&str]) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_largest_first() {
        let rows: Vec<u32> = (0..600).collect();
        let sizes: Vec<usize> = reusable_chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [256, 256, 64, 16, 8]);
        assert_eq!(reusable_chunks(&rows).flatten().copied().collect::<Vec<_>>(), rows);
        assert_eq!(reusable_chunks::<u32>(&[]).count(), 0);
    }
}

#[derive(Clone)]
pub struct Store {
    db: Database,
    /// The relay of the event log, woken by every commit that recorded events.
    relay: Relay,
}

impl Store {
    pub fn new(db: Database, relay: Relay) -> Self {
        Store { db, relay }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }
}
