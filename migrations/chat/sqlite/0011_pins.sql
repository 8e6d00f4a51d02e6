-- Pinned messages (at most 50 per conversation); a change is a conversation event (pin_changed).
CREATE TABLE pins (
    conversation_id         TEXT NOT NULL,
    message_seq             BIGINT NOT NULL,
    pinned_by               TEXT NOT NULL,
    pinned_at_ms            BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, message_seq)
);
