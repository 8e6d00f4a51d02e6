-- Verified contact points and single-use account tokens (see the SQLite migration).
ALTER TABLE users ADD COLUMN email_verified_at_ms BIGINT NULL;
ALTER TABLE users ADD COLUMN phone VARCHAR(32) NULL;
ALTER TABLE users ADD COLUMN phone_verified_at_ms BIGINT NULL;

CREATE TABLE account_tokens (
    token_hash              VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id                 VARCHAR(36) NOT NULL,
    purpose                 VARCHAR(32) NOT NULL,
    target                  VARCHAR(320) NOT NULL,
    attempts                BIGINT NOT NULL DEFAULT 0,
    expires_at_ms           BIGINT NOT NULL,
    used_at_ms              BIGINT NULL,
    created_at_ms           BIGINT NOT NULL,
    KEY account_tokens_user (user_id, purpose)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
