-- In-app notifications, system alerts, preferences, push subscriptions, contact points,
-- consumed events and the outbox of the notification service (SQLite).
CREATE TABLE notifications (
    id                      TEXT PRIMARY KEY NOT NULL,
    user_id                 TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    -- Makes a notification idempotent: one welcome per user, one per follow event, ...
    dedup_key               TEXT NOT NULL,
    title                   TEXT NOT NULL,
    body                    TEXT NOT NULL,
    -- JSON object of strings (conversation_id, seq, username, ...).
    data                    TEXT,
    read_at_ms              BIGINT,
    created_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX notifications_dedup ON notifications (user_id, dedup_key);
CREATE INDEX notifications_user ON notifications (user_id, created_at_ms, id);

-- System alerts: stored once, shown to every user.
CREATE TABLE alerts (
    id                      TEXT PRIMARY KEY NOT NULL,
    title                   TEXT NOT NULL,
    body                    TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
CREATE INDEX alerts_created ON alerts (created_at_ms, id);

-- Who has read which alert.
CREATE TABLE alert_reads (
    alert_id                TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    read_at_ms              BIGINT NOT NULL,
    PRIMARY KEY (alert_id, user_id)
);
CREATE INDEX alert_reads_user ON alert_reads (user_id);

-- Channel opt-ins; a user without a row has the defaults (in_app, push, email on; sms off).
CREATE TABLE preferences (
    user_id                 TEXT PRIMARY KEY NOT NULL,
    in_app                  BIGINT NOT NULL,
    push                    BIGINT NOT NULL,
    email                   BIGINT NOT NULL,
    sms                     BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);

CREATE TABLE muted_conversations (
    user_id                 TEXT NOT NULL,
    conversation_id         TEXT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

CREATE TABLE push_subscriptions (
    id                      TEXT PRIMARY KEY NOT NULL,
    user_id                 TEXT NOT NULL,
    endpoint                TEXT NOT NULL,
    -- SHA-256 of the endpoint, hex: endpoints are too long for a portable unique index.
    endpoint_hash           TEXT NOT NULL,
    p256dh                  TEXT NOT NULL,
    auth                    TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint_hash);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- Where a user's notification emails (and SMS) go, copied from the user worker's events.
CREATE TABLE contacts (
    user_id                 TEXT PRIMARY KEY NOT NULL,
    email                   TEXT,
    phone                   TEXT,
    updated_at_ms           BIGINT NOT NULL
);

CREATE TABLE processed_events (
    event_id                TEXT PRIMARY KEY NOT NULL,
    processed_at_ms         BIGINT NOT NULL
);

-- Delivery jobs leave through the outbox, in the transaction that decided them.
CREATE TABLE outbox (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject                 TEXT NOT NULL,
    payload                 BLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
