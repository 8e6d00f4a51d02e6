-- Conversations, members, messages, the per-conversation event log and its outbox, and the
-- consumed events of the chat service (SQLite).
CREATE TABLE conversations (
    id                      TEXT PRIMARY KEY NOT NULL,
    kind                    TEXT NOT NULL,
    name                    TEXT NOT NULL DEFAULT '',
    description             TEXT NOT NULL DEFAULT '',
    -- Direct conversations: "<smaller user id>:<larger user id>", so a pair has exactly one.
    direct_key              TEXT NULL UNIQUE,
    last_seq                BIGINT NOT NULL DEFAULT 0,
    member_count            BIGINT NOT NULL DEFAULT 0,
    deleted                 BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    last_activity_ms        BIGINT NOT NULL
);

CREATE TABLE members (
    conversation_id         TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    role                    TEXT NOT NULL,
    joined_seq              BIGINT NOT NULL,
    joined_at_ms            BIGINT NOT NULL,
    read_seq                BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE messages (
    conversation_id         TEXT NOT NULL,
    seq                     BIGINT NOT NULL,
    sender_id               TEXT NOT NULL,
    client_id               TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    content                 TEXT NOT NULL,
    url                     TEXT NULL,
    reply_to                BIGINT NULL,
    created_at_ms           BIGINT NOT NULL,
    edited_at_ms            BIGINT NULL,
    deleted                 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (sender_id, client_id)
);

-- Every conversation event, encoded (soulchat.chat.v1.ChatEvent), for resume.
CREATE TABLE events (
    conversation_id         TEXT NOT NULL,
    seq                     BIGINT NOT NULL,
    payload                 BLOB NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- Committed events not yet on the SOULCHAT_CHAT stream.
CREATE TABLE event_outbox (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id         TEXT NOT NULL,
    seq                     BIGINT NOT NULL
);

CREATE TABLE processed_events (
    event_id                TEXT PRIMARY KEY NOT NULL,
    processed_at_ms         BIGINT NOT NULL
);
