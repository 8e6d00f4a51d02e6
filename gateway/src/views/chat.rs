//! The JSON shapes of conversations and messages, shared by the REST routes and the WebSocket
//! frames. Ids are strings, a message's `seq` a number, times RFC 3339 in UTC.

use serde::{Deserialize, Serialize};
use soulchat_subjects::chat::messages::{Conversation, Member, Message, Pin};
use soulchat_subjects::time::rfc3339_ms;
use utoipa::ToSchema;

use crate::people::Names;

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub conversation_id: String,
    pub seq: i64,
    /// The sender's username; `null` once the account is gone.
    #[schema(required = true)]
    pub sender: Option<String>,
    pub client_id: String,
    pub kind: String,
    pub content: String,
    #[schema(required = true)]
    pub reply_to: Option<i64>,
    #[schema(required = true)]
    pub url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub edited_at: Option<String>,
    pub deleted: bool,
    /// Image and file messages: name, size, type... as the sender gave them.
    pub metadata: std::collections::HashMap<String, String>,
    /// Image and file messages instead of `url`: the upload, at `/api/attachments/{id}`.
    #[schema(required = true)]
    pub attachment_id: Option<String>,
    /// Each emoji used, in the order of first use; `me` is always false in live frames (one
    /// frame serves every member: the `reaction` frames say who).
    pub reactions: Vec<ReactionView>,
    /// The usernames its `@username`s name (resolved when it was sent or edited).
    pub mentions: Vec<String>,
    /// A thread reply: its root's seq (replies are not in the main history).
    #[schema(required = true)]
    pub thread_root: Option<i64>,
    /// A thread's root: its replies so far; `null` without replies.
    #[schema(required = true)]
    pub thread: Option<ThreadView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadView {
    pub reply_count: u32,
    #[schema(format = DateTime)]
    pub last_reply_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReactionView {
    pub emoji: String,
    pub count: u32,
    /// Whether the caller is among those who used it.
    pub me: bool,
}

impl MessageView {
    pub fn new(m: Message, names: &Names) -> Self {
        MessageView {
            sender: names.get(&m.sender_id),
            // A deleted account is no longer named.
            mentions: m.mention_ids.iter().filter_map(|id| names.get(id)).collect(),
            thread_root: m.thread_root,
            thread: m
                .thread
                .map(|t| ThreadView { reply_count: t.reply_count, last_reply_at: rfc3339_ms(t.last_reply_at_ms) }),
            conversation_id: m.conversation_id,
            seq: m.seq,
            client_id: m.client_id,
            kind: m.kind,
            content: m.content,
            reply_to: m.reply_to,
            url: m.url,
            created_at: rfc3339_ms(m.created_at_ms),
            edited_at: m.edited_at_ms.map(rfc3339_ms),
            deleted: m.deleted,
            metadata: m.metadata,
            attachment_id: m.attachment_id,
            reactions: m
                .reactions
                .into_iter()
                .map(|r| ReactionView { emoji: r.emoji, count: r.count, me: r.me })
                .collect(),
        }
    }

    /// Every user id a message names (its sender, its mentions), for [`Names::of_ids`].
    pub fn user_ids(m: &Message) -> impl Iterator<Item = &str> {
        std::iter::once(m.sender_id.as_str()).chain(m.mention_ids.iter().map(String::as_str))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(required = true)]
    pub username: Option<String>,
    pub role: String,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

impl MemberView {
    pub fn new(m: Member, names: &Names) -> Self {
        MemberView { username: names.get(&m.user_id), role: m.role, joined_at: rfc3339_ms(m.joined_at_ms) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub kind: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_activity_at: String,
    pub last_seq: i64,
    pub member_count: u32,
    pub members: Vec<MemberView>,
    pub my_role: String,
    pub read_seq: i64,
    pub unread_count: i64,
    #[schema(required = true)]
    pub last_message: Option<MessageView>,
}

impl ConversationView {
    pub fn new(c: Conversation, names: &Names) -> Self {
        let group = c.kind == "group";
        ConversationView {
            id: c.id,
            name: group.then_some(c.name),
            description: group.then_some(c.description),
            kind: c.kind,
            created_at: rfc3339_ms(c.created_at_ms),
            last_activity_at: rfc3339_ms(c.last_activity_ms),
            last_seq: c.last_seq,
            member_count: c.member_count,
            members: c.members.into_iter().map(|m| MemberView::new(m, names)).collect(),
            my_role: c.my_role,
            read_seq: c.read_seq,
            unread_count: c.unread_count,
            last_message: c.last_message.map(|m| MessageView::new(m, names)),
        }
    }

    /// Every user id a conversation mentions, for [`Names::of_ids`].
    pub fn user_ids(c: &Conversation) -> impl Iterator<Item = &str> {
        c.members.iter().map(|m| m.user_id.as_str()).chain(c.last_message.iter().flat_map(MessageView::user_ids))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationEnvelope {
    pub conversation: ConversationView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageEnvelope {
    pub message: MessageView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    #[schema(required = true)]
    pub next_cursor: Option<i64>,
}

/// A pinned message.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinView {
    pub message: MessageView,
    /// Who pinned it; `null` once the account is gone.
    #[schema(required = true)]
    pub pinned_by: Option<String>,
    #[schema(format = DateTime)]
    pub pinned_at: String,
}

impl PinView {
    pub fn new(p: Pin, names: &Names) -> Self {
        PinView {
            message: MessageView::new(p.message.unwrap_or_default(), names),
            pinned_by: names.get(&p.pinned_by_id),
            pinned_at: rfc3339_ms(p.pinned_at_ms),
        }
    }

    /// Every user id a pin mentions, for [`Names::of_ids`].
    pub fn user_ids(p: &Pin) -> impl Iterator<Item = &str> {
        std::iter::once(p.pinned_by_id.as_str()).chain(p.message.iter().flat_map(MessageView::user_ids))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PinEnvelope {
    pub pin: PinView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PinList {
    /// Newest pin first; every pin of the conversation (at most 50).
    pub pins: Vec<PinView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub messages: Vec<MessageView>,
    /// Pass back as `cursor`; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberEnvelope {
    pub member: MemberView,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DirectBody {
    #[schema(required = true)]
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GroupBody {
    #[schema(required = true)]
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConversationChanges {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMemberBody {
    #[schema(required = true)]
    #[serde(default)]
    pub username: String,
    pub role: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleBody {
    #[schema(required = true)]
    #[serde(default)]
    pub role: String,
}

/// A message to send, over REST or in a WebSocket `send` frame.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendBody {
    #[schema(required = true)]
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub kind: String,
    pub reply_to: Option<i64>,
    pub url: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    /// Image and file messages instead of `url`: an attachment the sender uploaded.
    pub attachment_id: Option<String>,
    /// Makes it a reply in the thread of this message (a seq).
    pub thread_root: Option<i64>,
}

/// An upload (`POST /api/attachments`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: String,
    /// The file name given.
    pub name: String,
    pub size: u64,
    /// Sniffed from the bytes where recognised, as declared otherwise.
    pub content_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentEnvelope {
    pub attachment: AttachmentView,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    #[schema(required = true)]
    #[serde(default)]
    pub content: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactionBody {
    /// One emoji (one grapheme cluster) or a `:shortcode:` of at most 32 characters.
    #[schema(required = true)]
    #[serde(default)]
    pub emoji: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReadBody {
    pub seq: i64,
}
