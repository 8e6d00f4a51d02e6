-- In-app notifications, system alerts, preferences, push subscriptions, contact points,
-- consumed events and the outbox of the notification service (MySQL / MariaDB).
CREATE TABLE notifications (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id                 VARCHAR(36) NOT NULL,
    kind                    VARCHAR(32) NOT NULL,
    dedup_key               VARCHAR(191) NOT NULL,
    title                   VARCHAR(255) NOT NULL,
    body                    TEXT NOT NULL,
    data                    TEXT NULL,
    read_at_ms              BIGINT NULL,
    created_at_ms           BIGINT NOT NULL,
    UNIQUE KEY notifications_dedup (user_id, dedup_key),
    KEY notifications_user (user_id, created_at_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alerts (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    title                   VARCHAR(255) NOT NULL,
    body                    TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    KEY alerts_created (created_at_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alert_reads (
    alert_id                VARCHAR(36) NOT NULL,
    user_id                 VARCHAR(36) NOT NULL,
    read_at_ms              BIGINT NOT NULL,
    PRIMARY KEY (alert_id, user_id),
    KEY alert_reads_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE preferences (
    user_id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    in_app                  BIGINT NOT NULL,
    push                    BIGINT NOT NULL,
    email                   BIGINT NOT NULL,
    sms                     BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE muted_conversations (
    user_id                 VARCHAR(36) NOT NULL,
    conversation_id         VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE push_subscriptions (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id                 VARCHAR(36) NOT NULL,
    endpoint                TEXT NOT NULL,
    endpoint_hash           VARCHAR(64) NOT NULL,
    p256dh                  VARCHAR(255) NOT NULL,
    auth                    VARCHAR(255) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    UNIQUE KEY push_subscriptions_endpoint (endpoint_hash),
    KEY push_subscriptions_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE contacts (
    user_id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    email                   VARCHAR(255) NULL,
    phone                   VARCHAR(32) NULL,
    updated_at_ms           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE processed_events (
    event_id                VARCHAR(191) NOT NULL PRIMARY KEY,
    processed_at_ms         BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE outbox (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subject                 VARCHAR(255) NOT NULL,
    payload                 MEDIUMBLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
