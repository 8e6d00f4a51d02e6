-- The chat worker's copy of the profile worker's blocks (from `profile.block_changed`): a
-- blocked user cannot open or send into a direct conversation with the blocker, and neither
-- is the other's contact for presence.
CREATE TABLE blocks (
    blocker_id              TEXT NOT NULL,
    blocked_id              TEXT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id);
