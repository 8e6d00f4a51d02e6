-- The chat worker's copy of the profile worker's blocks (from `profile.block_changed`): a
-- blocked user cannot open or send into a direct conversation with the blocker, and neither
-- is the other's contact for presence.
CREATE TABLE blocks (
    blocker_id              VARCHAR(64) NOT NULL,
    blocked_id              VARCHAR(64) NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id),
    KEY blocks_blocked (blocked_id, blocker_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
