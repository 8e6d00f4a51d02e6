-- Reactions to messages: one row per (message, emoji, member). A message's reactions are
-- counted when it is read; the change itself is a conversation event (reaction_changed).
-- utf8mb4_bin: emoji compare by their code points (a general collation equates many of them).
CREATE TABLE reactions (
    conversation_id         VARCHAR(64) NOT NULL,
    message_seq             BIGINT NOT NULL,
    emoji                   VARCHAR(64) NOT NULL,
    user_id                 VARCHAR(64) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, message_seq, emoji, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
