-- Full-text search of messages: an InnoDB FULLTEXT index, maintained at commit, so an edit or a
-- deletion (which blanks the content) is reflected as soon as it commits. The content's
-- collation becomes accent- and case-insensitive for the index (nothing compares content for
-- equality); stopwords are off for this index (the setting is read when it is created), so
-- "with" or "about" can be found. InnoDB indexes words of at least innodb_ft_min_token_size (3)
-- characters. Rebuilds the table: on a large installation, run it in a quiet hour.
SET SESSION innodb_ft_enable_stopword = OFF;

ALTER TABLE messages
    MODIFY content TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    ADD FULLTEXT INDEX messages_search (content);
