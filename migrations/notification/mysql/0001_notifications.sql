-- In-app notifications and consumed events of the notification service (MySQL / MariaDB).
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
    KEY notifications_user (user_id, created_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE processed_events (
    event_id                VARCHAR(191) NOT NULL PRIMARY KEY,
    processed_at_ms         BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
