-- Full-text search over records' searchable fields. search_text is normalized by the application
-- (lower-case, every CJK character a word of its own), so the unicode61 tokenizer indexes words and
-- Chinese queries match as phrases of characters. Triggers keep the index in step with every write.
ALTER TABLE records ADD COLUMN search_text TEXT NOT NULL DEFAULT '';

CREATE VIRTUAL TABLE records_fts USING fts5(search_text, content = 'records', content_rowid = 'rowid', tokenize = 'unicode61');

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
