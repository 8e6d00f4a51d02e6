-- In-app notifications and consumed events of the notification service (SQLite).
CREATE TABLE notifications (
    id                      TEXT PRIMARY KEY NOT NULL,
    user_id                 TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    -- Makes a notification idempotent: one welcome per user, one per follow event, ...
    dedup_key               TEXT NOT NULL,
    title                   TEXT NOT NULL,
    body                    TEXT NOT NULL,
    data                    TEXT,
    read_at_ms              BIGINT,
    created_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX notifications_dedup ON notifications (user_id, dedup_key);
CREATE INDEX notifications_user ON notifications (user_id, created_at_ms);

CREATE TABLE processed_events (
    event_id                TEXT PRIMARY KEY NOT NULL,
    processed_at_ms         BIGINT NOT NULL
);
