-- Accounts, sessions and the outbox of the user service (MySQL 8 / MariaDB 10.11).
CREATE TABLE users (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    username                VARCHAR(64) NOT NULL,
    username_norm           VARCHAR(64) NOT NULL,
    email                   VARCHAR(254) NOT NULL,
    email_norm              VARCHAR(254) NOT NULL,
    password_hash           VARCHAR(255) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL,
    UNIQUE KEY users_username_norm (username_norm),
    UNIQUE KEY users_email_norm (email_norm)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE refresh_families (
    id                      VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id                 VARCHAR(36) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    expires_at_ms           BIGINT NOT NULL,
    revoked_at_ms           BIGINT NULL,
    KEY refresh_families_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE refresh_tokens (
    token_hash              CHAR(64) NOT NULL PRIMARY KEY,
    family_id               VARCHAR(36) NOT NULL,
    issued_at_ms            BIGINT NOT NULL,
    rotated_at_ms           BIGINT NULL,
    KEY refresh_tokens_family (family_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE outbox (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subject                 VARCHAR(255) NOT NULL,
    payload                 MEDIUMBLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
