-- Members' reports of messages, for the administrators. `position` orders the open list.
CREATE TABLE reports (
    position                BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id                      VARCHAR(64) NOT NULL,
    conversation_id         VARCHAR(64) NOT NULL,
    seq                     BIGINT NOT NULL,
    reporter_id             VARCHAR(64) NOT NULL,
    author_id               VARCHAR(64) NOT NULL,
    reason                  TEXT NOT NULL,
    -- open, deleted, dismissed, suspended
    status                  VARCHAR(16) NOT NULL,
    created_at_ms           BIGINT NOT NULL,
    resolved_at_ms          BIGINT NULL,
    resolved_by             VARCHAR(64) NULL,
    UNIQUE KEY reports_id (id),
    UNIQUE KEY reports_once (reporter_id, conversation_id, seq),
    KEY reports_message (conversation_id, seq),
    KEY reports_status (status, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
