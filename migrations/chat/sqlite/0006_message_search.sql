-- Full-text search of messages (FTS5, an external-content index over `messages` by rowid).
-- Triggers keep it in step in the writing transaction, so an edit or a deletion (which blanks
-- the content) is reflected as soon as it commits. unicode61 folds case and accents.
-- The index refers to rows by rowid, which a VACUUM may renumber: after one, run
-- INSERT INTO messages_search (messages_search) VALUES ('rebuild').
CREATE VIRTUAL TABLE messages_search USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO messages_search (messages_search) VALUES ('rebuild');

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_search (rowid, content) VALUES (new.rowid, new.content);
END;
