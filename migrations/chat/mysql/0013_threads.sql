-- Thread replies: the seq of their root message; a thread is read by its root.
ALTER TABLE messages ADD COLUMN thread_root BIGINT NULL;
-- Every message has an entry (MariaDB has no partial indexes; SQLite indexes only replies).
CREATE INDEX messages_thread ON messages (conversation_id, thread_root, seq);
