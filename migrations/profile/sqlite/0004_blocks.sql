-- Who blocks whom. `id` orders a user's list of blocks, as it orders follows.
CREATE TABLE blocks (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    blocker_id              TEXT NOT NULL,
    blocked_id              TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL
);
CREATE UNIQUE INDEX blocks_pair ON blocks (blocker_id, blocked_id);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
CREATE INDEX blocks_blocker ON blocks (blocker_id, id);
