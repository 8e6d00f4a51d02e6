-- Thread replies: the seq of their root message; a thread is read by its root.
ALTER TABLE messages ADD COLUMN thread_root BIGINT NULL;
-- Partial: only replies are indexed (the main history reads the primary key), so a plain send
-- writes no entry here.
CREATE INDEX messages_thread ON messages (conversation_id, thread_root, seq) WHERE thread_root IS NOT NULL;
