-- The event log is its own outbox: every event recorded from now on takes the next `position`
-- (from `event_log`, taken in the recording transaction), so positions follow commit order and
-- the relay keeps a cursor (`relayed`) instead of writing and deleting an outbox row per event.
-- `at_ms` dates an event for retention; `traceparent` is the recording request's trace context,
-- published with it. Events recorded before this migration keep a NULL position: relayed already,
-- except those still in `event_outbox`, which take their outbox id as their position.
ALTER TABLE events ADD COLUMN position BIGINT NULL;
ALTER TABLE events ADD COLUMN at_ms BIGINT NULL;
ALTER TABLE events ADD COLUMN traceparent TEXT NULL;
CREATE UNIQUE INDEX events_position ON events (position);

CREATE TABLE event_log (
    id                      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    -- The last position taken.
    last_position           BIGINT NOT NULL,
    -- Every event up to this position is on the SOULCHAT_CHAT stream.
    relayed                 BIGINT NOT NULL
);

UPDATE events SET position = o.id, traceparent = o.traceparent
FROM event_outbox o WHERE o.conversation_id = events.conversation_id AND o.seq = events.seq;

INSERT INTO event_log (id, last_position, relayed)
SELECT 1, COALESCE(MAX(id), 0), COALESCE(MIN(id) - 1, 0) FROM event_outbox;

DELETE FROM event_outbox;
