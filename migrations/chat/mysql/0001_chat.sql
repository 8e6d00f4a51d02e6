-- Conversations, members, messages, the per-conversation event log and its outbox, and the
-- consumed events of the chat service (MySQL / MariaDB).
CREATE TABLE conversations (
    id                      VARCHAR(64) NOT NULL PRIMARY KEY,
    kind                    VARCHAR(16) NOT NULL,
    name                    VARCHAR(400) NOT NULL DEFAULT '',
    description             TEXT NOT NULL,
    -- Direct conversations: "<smaller user id>:<larger user id>", so a pair has exactly one.
    direct_key              VARCHAR(191) NULL,
    last_seq                BIGINT NOT NULL DEFAULT 0,
    member_count            BIGINT NOT NULL DEFAULT 0,
    deleted                 BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    last_activity_ms        BIGINT NOT NULL,
    UNIQUE KEY conversations_direct (direct_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE members (
    conversation_id         VARCHAR(64) NOT NULL,
    user_id                 VARCHAR(64) NOT NULL,
    role                    VARCHAR(16) NOT NULL,
    joined_seq              BIGINT NOT NULL,
    joined_at_ms            BIGINT NOT NULL,
    read_seq                BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id),
    KEY members_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE messages (
    conversation_id         VARCHAR(64) NOT NULL,
    seq                     BIGINT NOT NULL,
    sender_id               VARCHAR(64) NOT NULL,
    client_id               VARCHAR(64) NOT NULL,
    kind                    VARCHAR(16) NOT NULL,
    content                 TEXT NOT NULL,
    url                     TEXT NULL,
    reply_to                BIGINT NULL,
    created_at_ms           BIGINT NOT NULL,
    edited_at_ms            BIGINT NULL,
    deleted                 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE KEY messages_client (sender_id, client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every conversation event, encoded (soulchat.chat.v1.ChatEvent), for resume.
CREATE TABLE events (
    conversation_id         VARCHAR(64) NOT NULL,
    seq                     BIGINT NOT NULL,
    payload                 MEDIUMBLOB NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Committed events not yet on the SOULCHAT_CHAT stream.
CREATE TABLE event_outbox (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    conversation_id         VARCHAR(64) NOT NULL,
    seq                     BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE processed_events (
    event_id                VARCHAR(191) NOT NULL PRIMARY KEY,
    processed_at_ms         BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
