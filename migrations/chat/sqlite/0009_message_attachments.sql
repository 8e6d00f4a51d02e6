-- An image's or file's upload in the soulchat_attachments object store, instead of a url; kept
-- when the message is deleted, so that the attachment goes with the last message that used it.
ALTER TABLE messages ADD COLUMN attachment_id TEXT NULL;
-- Who may read an attachment, and whether it is still used. Partial: nearly every message has
-- none, and a send should not write an index entry for nothing.
CREATE INDEX messages_attachment ON messages (attachment_id) WHERE attachment_id IS NOT NULL;
