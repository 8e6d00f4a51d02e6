-- Pinned messages (at most 50 per conversation); a change is a conversation event (pin_changed).
CREATE TABLE pins (
    conversation_id         VARCHAR(64) NOT NULL,
    message_seq             BIGINT NOT NULL,
    pinned_by               VARCHAR(64) NOT NULL,
    pinned_at_ms            BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, message_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
