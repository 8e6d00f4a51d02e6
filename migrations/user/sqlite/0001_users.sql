-- Accounts, sessions and the outbox of the user service (SQLite).
CREATE TABLE users (
    id                      TEXT PRIMARY KEY NOT NULL,
    username                TEXT NOT NULL,
    username_norm           TEXT NOT NULL,
    email                   TEXT NOT NULL,
    email_norm              TEXT NOT NULL,
    password_hash           TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_norm ON users (username_norm);
CREATE UNIQUE INDEX users_email_norm ON users (email_norm);

-- A login starts a family; every refresh rotates the token within it. Reuse of a rotated
-- token revokes the whole family.
CREATE TABLE refresh_families (
    id                      TEXT PRIMARY KEY NOT NULL,
    user_id                 TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    expires_at_ms           BIGINT NOT NULL,
    revoked_at_ms           BIGINT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    token_hash              TEXT PRIMARY KEY NOT NULL,
    family_id               TEXT NOT NULL,
    issued_at_ms            BIGINT NOT NULL,
    rotated_at_ms           BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE outbox (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    subject                 TEXT NOT NULL,
    payload                 BLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
