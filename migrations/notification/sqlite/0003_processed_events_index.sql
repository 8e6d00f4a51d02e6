-- The pruner deletes processed-event ids by age (services/runtime/src/processed.rs).
CREATE INDEX processed_events_processed_at ON processed_events (processed_at_ms);
