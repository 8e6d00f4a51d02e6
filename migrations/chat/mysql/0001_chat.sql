-- Consumed events and the outbox of the chat service (MySQL / MariaDB).
CREATE TABLE processed_events (
    event_id                VARCHAR(191) NOT NULL PRIMARY KEY,
    processed_at_ms         BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
