-- Profiles, the follow graph, consumed events and the outbox of the profile service (SQLite).
CREATE TABLE profiles (
    user_id                 TEXT PRIMARY KEY NOT NULL,
    username                TEXT NOT NULL,
    username_norm           TEXT NOT NULL,
    bio                     TEXT,
    image                   TEXT,
    followers_count         BIGINT NOT NULL DEFAULT 0,
    following_count         BIGINT NOT NULL DEFAULT 0,
    -- Grows with every change; the cache refuses to replace a newer version with an older one.
    version                 BIGINT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX profiles_username_norm ON profiles (username_norm);

-- `id` orders the lists: new follows append, so paging never repeats or skips one.
CREATE TABLE follows (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    follower_id             TEXT NOT NULL,
    followee_id             TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX follows_pair ON follows (follower_id, followee_id);
CREATE INDEX follows_followee ON follows (followee_id, id);
CREATE INDEX follows_follower ON follows (follower_id, id);

CREATE TABLE processed_events (
    event_id                TEXT PRIMARY KEY NOT NULL,
    processed_at_ms         BIGINT NOT NULL
);

CREATE TABLE outbox (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject                 TEXT NOT NULL,
    payload                 BLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
