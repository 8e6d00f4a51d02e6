-- Profiles, the follow graph, consumed events and the outbox of the profile service (MySQL / MariaDB).
CREATE TABLE profiles (
    user_id                 VARCHAR(36) NOT NULL PRIMARY KEY,
    username                VARCHAR(64) NOT NULL,
    username_norm           VARCHAR(64) NOT NULL,
    bio                     TEXT NULL,
    image                   TEXT NULL,
    followers_count         BIGINT NOT NULL DEFAULT 0,
    following_count         BIGINT NOT NULL DEFAULT 0,
    version                 BIGINT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    updated_at_ms           BIGINT NOT NULL,
    UNIQUE KEY profiles_username_norm (username_norm)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE follows (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    follower_id             VARCHAR(36) NOT NULL,
    followee_id             VARCHAR(36) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    UNIQUE KEY follows_pair (follower_id, followee_id),
    KEY follows_followee (followee_id, id),
    KEY follows_follower (follower_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE processed_events (
    event_id                VARCHAR(191) NOT NULL PRIMARY KEY,
    processed_at_ms         BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE outbox (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subject                 VARCHAR(255) NOT NULL,
    payload                 MEDIUMBLOB NOT NULL,
    created_at_ms           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
