//! The chat database, behind one type so handlers never write SQL: conversations, members,
//! messages, and the per-conversation event log with its outbox, one file each.
//!
//! Every change to a conversation appends an event under the conversation's next `seq`
//! ([`Store::next_seq`], or [`Store::send_context`] for a batch of sends, then [`Store::record`]) in the
//! transaction that makes the change, so the log, the tables and the outbox never disagree.
//!
//! Reads take `&mut impl Reads` (a read connection, or the write transaction they belong to);
//! writes take the [`WriteTx`](soulchat_runtime::WriteTx). Whatever adds to the event outbox
//! registers the relay's wake in that transaction, so its commit sets the event on its way.

mod conversations;
mod events;
mod members;
mod messages;
mod sends;

use soulchat_runtime::Database;
use soulchat_runtime::relay::Relay;

pub use conversations::ConversationRow;
pub use members::MemberRow;
pub use messages::MessageRow;

/// A query from fixed pieces (a shared column list and a condition).
fn sql(parts: &[&str]) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(parts.concat())
}

#[derive(Clone)]
pub struct Store {
    db: Database,
    /// The relay of `event_outbox`, woken by every commit that recorded events.
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
