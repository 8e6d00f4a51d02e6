-- Consumed events and the outbox of the chat service (SQLite).
CREATE TABLE processed_events (
    event_id                TEXT PRIMARY KEY NOT NULL,
    processed_at_ms         BIGINT NOT NULL
);
