-- An administrator's suspension: login is refused until `suspended_until_ms`.
ALTER TABLE users ADD COLUMN suspended_until_ms BIGINT NULL;
ALTER TABLE users ADD COLUMN suspension_reason TEXT NULL;
