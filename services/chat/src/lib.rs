//! The chat worker: direct conversations and groups, their members, messages and read
//! receipts, answering `soulchat.chat.v1.*` from the `chat_service` database it alone owns.
//!
//! Members react to messages ([`reactions`]), pin them ([`pins`]) and reply in threads (a
//! send with a `thread_root`, read apart from the main history).
//!
//! Every change to a conversation is an event with the conversation's next `seq`, written in
//! the transaction that makes the change ([`log`]): the `events` table is what resume replays,
//! and, in the order of the commits, what [`relay`] publishes to the `SOULCHAT_CHAT` stream
//! (`Nats-Msg-Id=<conversation_id>:<seq>`, with the recipients filled in) for the gateways to
//! deliver; [`retention`] deletes events older than resume is asked for. Sends are
//! group-committed ([`committer`]); [`search`] reads a full-text index the same transactions keep;
//! image and file messages may carry uploads, whose lifecycle is the worker's ([`attachments`]).
//! Users are known by id only; the gateway maps usernames both ways. A deleted account leaves
//! every conversation ([`events`]).
//!
//! Blocks belong to the profile worker; the chat worker keeps a copy from its
//! `profile.block_changed` events ([`events`]) rather than asking for each send, so the check
//! costs the send path an index probe in the look-up it makes anyway, not a request. The copy
//! trails the profile worker by the event's relay (milliseconds).

mod access;
mod attachments;
mod committer;
mod conversations;
mod events;
mod log;
mod members;
mod messages;
mod pins;
mod reactions;
mod relay;
mod reports;
mod resume;
mod retention;
mod search;
mod store;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::{Context, Endpoints, Migrations, Service};
use soulchat_subjects::{ServiceDef, broker, chat, streams};

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/chat/sqlite"),
    mysql: sqlx::migrate!("../../migrations/chat/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    /// How long the event log keeps events for resume (see [`retention`]).
    pub event_retention: Duration,
    /// How long an upload may wait to be sent before it is deleted (see [`attachments`]).
    pub attachment_unused: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { event_retention: retention::DEFAULT_RETENTION, attachment_unused: attachments::DEFAULT_UNUSED }
    }
}

/// The chat worker's state, shared by its handlers.
pub struct Chat {
    store: store::Store,
    committer: committer::Committer,
    /// Calls to other workers (suspending a reported author).
    caller: soulchat_subjects::Caller,
    /// The `soulchat_attachments` object store.
    attachments: async_nats::jetstream::object_store::ObjectStore,
}

impl Service for Chat {
    const CONTRACT: ServiceDef = chat::SERVICE;
    type Config = Config;

    fn migrations() -> &'static Migrations {
        &MIGRATIONS
    }

    async fn start(config: Config, ctx: &mut Context) -> anyhow::Result<Arc<Chat>> {
        // The relay outlives the requests: it stops after the last send was committed.
        let relay = ctx.relay("chat-relay", relay::EventLog)?;
        let store = store::Store::new(ctx.db.clone(), relay);
        ctx.spawn(retention::spawn(store.clone(), config.event_retention, ctx.shutdown()));
        let bucket = attachments::Bucket {
            objects: ctx.js.get_object_store(streams::ATTACHMENTS_BUCKET).await?,
            stream: ctx.js.get_stream(broker::object_stream(streams::ATTACHMENTS_BUCKET)).await?,
        };
        let attachments = bucket.objects.clone();
        ctx.spawn(attachments::spawn_sweep(store.clone(), bucket, config.attachment_unused, ctx.shutdown()));
        let committer = committer::Committer::spawn(store.clone(), ctx)?;
        let chat = Arc::new(Chat { store, committer, caller: ctx.caller.clone(), attachments });
        ctx.consume(chat::USER_DELETED, chat.clone());
        ctx.consume(chat::PROFILE_BLOCKS, chat.clone());
        Ok(chat)
    }

    fn endpoints(endpoints: Endpoints<Chat>) -> Endpoints<Chat> {
        endpoints
            .handle::<chat::OpenDirect>(conversations::open_direct)
            .handle::<chat::CreateGroup>(conversations::create_group)
            .handle::<chat::Get>(conversations::get)
            .handle::<chat::List>(conversations::list)
            .handle::<chat::Update>(conversations::update)
            .handle::<chat::Delete>(conversations::delete)
            .handle::<chat::AddMember>(members::add_member)
            .handle::<chat::ChangeRole>(members::change_role)
            .handle::<chat::RemoveMember>(members::remove_member)
            .handle::<chat::Send>(messages::send)
            .handle::<chat::Edit>(messages::edit)
            .handle::<chat::DeleteMessage>(messages::delete_message)
            .handle::<chat::History>(messages::history)
            .handle::<chat::MarkRead>(messages::mark_read)
            .handle::<chat::Resume>(resume::resume)
            .handle::<chat::Contacts>(members::contacts)
            .handle::<chat::Search>(search::search)
            .handle::<chat::Report>(reports::report)
            .handle::<chat::ListReports>(reports::list_reports)
            .handle::<chat::ResolveReport>(reports::resolve_report)
            .handle::<chat::AttachmentAccess>(attachments::access)
            .handle::<chat::AddReaction>(reactions::add)
            .handle::<chat::RemoveReaction>(reactions::remove)
            .handle::<chat::Pin>(pins::pin)
            .handle::<chat::Unpin>(pins::unpin)
            .handle::<chat::Pins>(pins::pins)
            .handle::<chat::Thread>(messages::thread)
    }
}
