-- Members' reports of messages, for the administrators. `position` orders the open list.
CREATE TABLE reports (
    position                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                      TEXT NOT NULL,
    conversation_id         TEXT NOT NULL,
    seq                     BIGINT NOT NULL,
    reporter_id             TEXT NOT NULL,
    author_id               TEXT NOT NULL,
    reason                  TEXT NOT NULL,
    -- open, deleted, dismissed, suspended
    status                  TEXT NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    resolved_at_ms          BIGINT NULL,
    resolved_by             TEXT NULL
);
CREATE UNIQUE INDEX reports_id ON reports (id);
CREATE UNIQUE INDEX reports_once ON reports (reporter_id, conversation_id, seq);
CREATE INDEX reports_message ON reports (conversation_id, seq);
CREATE INDEX reports_status ON reports (status, position);
