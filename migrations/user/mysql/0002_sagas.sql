-- The saga log (see the SQLite migration of the same name).
CREATE TABLE sagas (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    kind                    VARCHAR(32) NOT NULL,
    user_id                 VARCHAR(36) NOT NULL,
    step                    VARCHAR(32) NOT NULL,
    state                   VARCHAR(16) NOT NULL,
    data                    MEDIUMBLOB NULL,
    attempts                BIGINT NOT NULL DEFAULT 0,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL,
    KEY sagas_open (state, updated_at_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A registering account stays pending until its profile exists (see the SQLite migration).
ALTER TABLE users ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
