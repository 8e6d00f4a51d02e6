-- Verified contact points and the single-use tokens that verify them (and reset passwords).
ALTER TABLE users ADD COLUMN email_verified_at_ms BIGINT NULL;
ALTER TABLE users ADD COLUMN phone TEXT NULL;
ALTER TABLE users ADD COLUMN phone_verified_at_ms BIGINT NULL;

-- Only the SHA-256 of a token (or of "<user id>:<code>" for SMS codes) is stored. `target` is
-- the email or phone number being verified: a token for an address the account no longer has
-- verifies nothing.
CREATE TABLE account_tokens (
    token_hash              TEXT PRIMARY KEY NOT NULL,
    user_id                 TEXT NOT NULL,
    purpose                 TEXT NOT NULL,
    target                  TEXT NOT NULL,
    attempts                BIGINT NOT NULL DEFAULT 0,
    expires_at_ms           BIGINT NOT NULL,
    used_at_ms              BIGINT NULL,
    created_at_ms           BIGINT NOT NULL
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
