//! The chat calls REST and WebSocket share: sending a message (rate limited per user, over both
//! together) and marking a conversation read (the members' sockets hear of it). Routes and
//! sessions differ only in how they answer: a status and a JSON body, or a frame.

use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::{CallContext, Caller, ServiceError};

use crate::limits::SendLimit;
use crate::live;
use crate::people::{self, Names};
use crate::views::chat::SendBody;
use crate::views::frames;

pub struct Chat {
    caller: Caller,
    send_limit: SendLimit,
}

impl Chat {
    pub fn new(caller: Caller, send_limit: SendLimit) -> Self {
        Chat { caller, send_limit }
    }

    /// Sends `sender`'s message (`ctx` carries the same user); 429 past the send limit. A retry
    /// with the same `client_id` answers with the stored message, marked `duplicate`.
    pub async fn send(
        &self,
        sender: &str,
        ctx: &CallContext,
        conversation_id: String,
        body: SendBody,
    ) -> Result<cm::MessageReply, ServiceError> {
        self.send_limit.check(sender).await?;
        let mention_ids = people::mentioned(&self.caller, ctx, &body.content).await?;
        let request = cm::SendRequest {
            conversation_id,
            client_id: body.client_id,
            content: body.content,
            kind: body.kind,
            reply_to: body.reply_to,
            url: body.url,
            metadata: body.metadata,
            attachment_id: body.attachment_id,
            mention_ids,
            thread_root: body.thread_root,
        };
        Ok(self.caller.call::<chat::Send>(ctx, &request).await?)
    }

    /// Records a read receipt, then tells the conversation's members (the reader included).
    pub async fn mark_read(&self, ctx: &CallContext, conversation_id: String, seq: i64) -> Result<(), ServiceError> {
        let read = self.caller.call::<chat::MarkRead>(ctx, &cm::MarkReadRequest { conversation_id, seq }).await?;
        let name =
            Names::of_ids(&self.caller, ctx, [read.user_id.as_str()]).await.ok().and_then(|n| n.get(&read.user_id));
        let frame = frames::read(&read.conversation_id, name, read.read_seq);
        live::publish(self.caller.client(), &read.recipients, frame).await;
        Ok(())
    }
}
