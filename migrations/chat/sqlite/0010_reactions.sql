-- Reactions to messages: one row per (message, emoji, member). A message's reactions are
-- counted when it is read; the change itself is a conversation event (reaction_changed).
CREATE TABLE reactions (
    conversation_id         TEXT NOT NULL,
    message_seq             BIGINT NOT NULL,
    emoji                   TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, message_seq, emoji, user_id)
);
