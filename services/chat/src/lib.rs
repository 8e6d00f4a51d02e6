//! The chat worker: direct conversations and groups, their members, messages and read
//! receipts, answering `soulchat.chat.v1.*` from the `chat_service` database it alone owns.
//!
//! Every change to a conversation is an event with the conversation's next `seq`, written in
//! the transaction that makes the change ([`log`]): the `events` table is what resume replays,
//! and its outbox is what [`relay`] publishes to the `SOULCHAT_CHAT` stream
//! (`Nats-Msg-Id=<conversation_id>:<seq>`, with the recipients filled in) for the gateways to
//! deliver. Sends are group-committed ([`committer`]). Users are known by id only; the gateway
//! maps usernames both ways. A deleted account leaves every conversation ([`events`]).

mod access;
mod committer;
mod conversations;
mod events;
mod log;
mod members;
mod messages;
mod relay;
mod resume;
mod store;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::{Database, Migrations, WorkerBuilder, consumer};
use soulchat_subjects::{chat, user};
use tokio_util::sync::CancellationToken;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/chat/sqlite"),
    mysql: sqlx::migrate!("../../migrations/chat/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
}

pub(crate) struct Chat {
    store: store::Store,
    committer: committer::Committer,
    relay: relay::Relay,
}

/// Runs the chat worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let js = async_nats::jetstream::new(client.clone());
    soulchat_subjects::streams::declare(&js).await?;
    let store = store::Store::new(db.clone());
    let relay = relay::Relay::default();
    // The relay outlives the worker's shutdown: it stops after the last send was committed.
    let relay_stop = CancellationToken::new();
    let relaying = relay.spawn(db.clone(), js.clone(), relay_stop.clone())?;
    let (committer, committing) = committer::Committer::spawn(store.clone(), relay.clone())?;
    let chat = Arc::new(Chat { store, committer, relay });
    let deletions =
        consumer::spawn::<user::Deleted, _>(js, db.clone(), "chat-user-deleted", chat.clone(), shutdown.clone());
    let worker = WorkerBuilder::new(chat::SERVICE, env!("CARGO_PKG_VERSION"), chat.clone())
        .handle::<chat::OpenDirect, _, _>(conversations::open_direct)
        .handle::<chat::CreateGroup, _, _>(conversations::create_group)
        .handle::<chat::Get, _, _>(conversations::get)
        .handle::<chat::List, _, _>(conversations::list)
        .handle::<chat::Update, _, _>(conversations::update)
        .handle::<chat::Delete, _, _>(conversations::delete)
        .handle::<chat::AddMember, _, _>(members::add_member)
        .handle::<chat::ChangeRole, _, _>(members::change_role)
        .handle::<chat::RemoveMember, _, _>(members::remove_member)
        .handle::<chat::Send, _, _>(messages::send)
        .handle::<chat::Edit, _, _>(messages::edit)
        .handle::<chat::DeleteMessage, _, _>(messages::delete_message)
        .handle::<chat::History, _, _>(messages::history)
        .handle::<chat::MarkRead, _, _>(messages::mark_read)
        .handle::<chat::Resume, _, _>(resume::resume)
        .handle::<chat::Contacts, _, _>(members::contacts)
        .start(client, shutdown)
        .await?;
    worker.run_until_shutdown().await;
    chat.committer.close();
    let _ = committing.await;
    let _ = deletions.await;
    relay_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), relaying).await;
    db.close().await;
    Ok(())
}
