-- The users a message's `@username`s name (a JSON array of user ids), resolved by the gateway.
ALTER TABLE messages ADD COLUMN mention_ids TEXT NULL;
