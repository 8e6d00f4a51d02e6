//! The chat service contract: conversations, members, messages and read receipts
//! (`soulchat.chat.v1.*`), and the committed conversation events it publishes to the
//! `SOULCHAT_CHAT` stream ([`crate::streams::chat_events`]).

pub use crate::proto::chat::v1 as messages;
use crate::proto::common::v1::Empty;
use messages::*;

crate::service! {
    SERVICE = "chat", "Conversations, messages and delivery";
    v1 {
        /// The caller's direct conversation with another user, created on first use (`created`).
        OpenDirect = "open_direct": OpenDirectRequest => ConversationReply, by [Gateway];
        /// A group with the caller as owner.
        CreateGroup = "create_group": CreateGroupRequest => ConversationReply, by [Gateway];
        /// One of the caller's conversations, with its members.
        Get = "get": GetRequest => ConversationReply, by [Gateway, Notification];
        /// The caller's conversations, newest activity first, with last message and unread count.
        List = "list": ListRequest => ConversationList, by [Gateway];
        /// Renames or redescribes a group (admins and the owner).
        Update = "update": UpdateRequest => ConversationReply, by [Gateway];
        /// Deletes a group (the owner).
        Delete = "delete": DeleteRequest => Empty, by [Gateway];
        /// Adds a member to a group (admins and the owner).
        AddMember = "add_member": AddMemberRequest => MemberReply, by [Gateway];
        /// Changes a member's role; `owner` transfers ownership.
        ChangeRole = "change_role": ChangeRoleRequest => MemberReply, by [Gateway];
        /// Removes a member, or leaves when it is the caller.
        RemoveMember = "remove_member": RemoveMemberRequest => Empty, by [Gateway];
        /// Sends a message; idempotent by (sender, client_id). Answered after the commit.
        Send = "send": SendRequest => MessageReply, by [Gateway];
        /// Edits a message (its sender).
        Edit = "edit": EditRequest => MessageReply, by [Gateway];
        /// Deletes a message (its sender, admins, the owner).
        DeleteMessage = "delete_message": DeleteMessageRequest => Empty, by [Gateway];
        /// Message history, ascending, paged by exclusive `before`/`after` seq; thread replies
        /// are not in it.
        History = "history": HistoryRequest => MessageList, by [Gateway];
        /// A read receipt: everything up to a seq is read.
        MarkRead = "mark_read": MarkReadRequest => ReadReply, by [Gateway];
        /// Everyone who shares a conversation with the caller (presence goes to them).
        Contacts = "contacts": ContactsRequest => ContactsReply, by [Gateway];
        /// The events the caller missed, per conversation, for a WebSocket resume.
        Resume = "resume": ResumeRequest => ResumeReply, by [Gateway];
        /// Full-text search of the messages in the caller's conversations, best match first.
        Search = "search": SearchRequest => SearchReply, by [Gateway];
        /// A member reports a message to the administrators.
        Report = "report": ReportRequest => ReportReply, by [Gateway];
        /// Open reports with their messages, oldest first (the gateway checks admin rights).
        ListReports = "list_reports": ListReportsRequest => ReportList, by [Gateway];
        /// Resolves a report: delete the message, dismiss, or suspend the author (admins).
        ResolveReport = "resolve_report": ResolveReportRequest => ReportReply, by [Gateway];
        /// Whether the caller may read an attachment: one of their conversations carries it.
        AttachmentAccess = "attachment_access": AttachmentAccessRequest => Empty, by [Gateway];
        /// Adds the caller's reaction to a message (idempotent); answers with the message.
        AddReaction = "add_reaction": ReactionRequest => MessageReply, by [Gateway];
        /// Removes the caller's reaction from a message (idempotent); answers with the message.
        RemoveReaction = "remove_reaction": ReactionRequest => MessageReply, by [Gateway];
        /// Pins a message (group admins and the owner; either member of a direct conversation).
        Pin = "pin": PinRequest => PinReply, by [Gateway];
        /// Unpins a message (as `pin`; idempotent).
        Unpin = "unpin": PinRequest => Empty, by [Gateway];
        /// A conversation's pinned messages, newest pin first.
        Pins = "pins": PinsRequest => PinList, by [Gateway];
        /// A thread's replies, paged as history.
        Thread = "thread": ThreadRequest => MessageList, by [Gateway];
    }
}

crate::events! {
    STREAM = crate::streams::CHAT_STREAM;
    /// Every committed conversation event (message created, edited, deleted, pinned or unpinned;
    /// reaction added or removed; member added, changed or removed; conversation created, updated
    /// or deleted), one subject per conversation (`soulchat.chat.events.<conversation_id>`), in
    /// `seq` order.
    Committed = crate::streams::CHAT_SUBJECTS => ChatEvent;
}

crate::consumers! {
    /// Removes a deleted user from every conversation.
    USER_DELETED: crate::user::Deleted = "chat-user-deleted";
    /// Keeps the copy of blocks that open_direct, send and contacts check.
    PROFILE_BLOCKS: crate::profile::BlockChanged = "chat-profile-blocks";
}
