-- The saga log: registration and rename span the user and profile (and notification) workers;
-- each saga's progress is recorded here so a restarted worker finishes or compensates it.
CREATE TABLE sagas (
    id                      TEXT PRIMARY KEY NOT NULL,
    kind                    TEXT NOT NULL,
    user_id                 TEXT NOT NULL,
    step                    TEXT NOT NULL,
    state                   TEXT NOT NULL,
    -- Kind-specific data (protobuf), e.g. the names of a rename.
    data                    BLOB,
    attempts                BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);
CREATE INDEX sagas_open ON sagas (state, updated_at_ms);

-- A registering account stays pending until its profile exists: it holds its username and
-- email but cannot log in. Only the registration saga clears it.
ALTER TABLE users ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
