//! The chat service contract (`soulchat.chat.v1.*`).

crate::service! {
    SERVICE = "soulchat-chat", "soulchat.chat.v1", "Conversations, messages and delivery";
}
