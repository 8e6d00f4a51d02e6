-- The trace context of the request that recorded an event, published with it (`traceparent`).
ALTER TABLE outbox ADD COLUMN traceparent VARCHAR(64) NULL;
