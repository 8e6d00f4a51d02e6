-- The event log is its own outbox: every event recorded from now on takes the next `position`
-- (from `event_log`, whose row the recording transaction holds until it commits), so positions
-- follow commit order and the relay keeps a cursor (`relayed`) instead of writing and deleting an
-- outbox row per event. `at_ms` dates an event for retention; `traceparent` is the recording
-- request's trace context, published with it. Events recorded before this migration keep a NULL
-- position: relayed already, except those still in `event_outbox`, which take their outbox id.
ALTER TABLE events
    ADD COLUMN position BIGINT NULL,
    ADD COLUMN at_ms BIGINT NULL,
    ADD COLUMN traceparent VARCHAR(64) NULL,
    ADD UNIQUE KEY events_position (position);

CREATE TABLE event_log (
    id                      INT NOT NULL PRIMARY KEY,
    -- The last position taken.
    last_position           BIGINT NOT NULL,
    -- Every event up to this position is on the SOULCHAT_CHAT stream.
    relayed                 BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

UPDATE events e JOIN event_outbox o ON o.conversation_id = e.conversation_id AND o.seq = e.seq
SET e.position = o.id, e.traceparent = o.traceparent;

INSERT INTO event_log (id, last_position, relayed)
SELECT 1, COALESCE(MAX(id), 0), COALESCE(MIN(id) - 1, 0) FROM event_outbox;

DELETE FROM event_outbox;
