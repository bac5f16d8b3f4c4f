-- Full-text search over records' searchable fields. The trigram tokenizer matches substrings in any
-- script (Chinese has no spaces between words); queries shorter than three characters use LIKE on
-- search_text instead. Triggers keep the index in step with every write.
ALTER TABLE records ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

CREATE VIRTUAL TABLE records_fts USING fts5(search_text, content = 'records', content_rowid = 'rowid', tokenize = 'trigram');

CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
    INSERT INTO records_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER records_fts_update AFTER UPDATE OF search_text ON records BEGIN
    INSERT INTO records_fts(records_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO records_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    INSERT INTO records_fts(records_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
