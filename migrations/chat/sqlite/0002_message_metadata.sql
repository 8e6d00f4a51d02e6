-- What the client says about an image's or file's content (a JSON object of strings).
ALTER TABLE messages ADD COLUMN metadata TEXT NULL;
