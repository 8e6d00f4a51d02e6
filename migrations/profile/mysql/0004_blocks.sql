-- Who blocks whom. `id` orders a user's list of blocks, as it orders follows.
CREATE TABLE blocks (
    id                      BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    blocker_id              VARCHAR(36) NOT NULL,
    blocked_id              VARCHAR(36) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    UNIQUE KEY blocks_pair (blocker_id, blocked_id),
    KEY blocks_blocked (blocked_id),
    KEY blocks_blocker (blocker_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
