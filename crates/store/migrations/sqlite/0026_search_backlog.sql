-- Bulk imports no longer index their rows for search inside their own transactions: each chunk
-- records its rowid range here instead, and the search indexer (`Store::index_search_backlog`: the
-- scheduler in the background, and every search first for the entity it searches) indexes the
-- ranges later with one `INSERT … SELECT` each. FTS5's work was ~16 of the ~55 ms a 5,000-row chunk
-- spent on the write connection (BENCHMARKS.md).
--
-- A range's rows are not in `records_fts` until indexed, and FTS5 must never be told to forget a
-- row it does not hold (an external-content index is corrupted by a 'delete' of text it never
-- indexed), so the triggers leave rows inside a range alone: an update or delete of such a row
-- changes nothing in the index, and the indexer later indexes whatever text the row has then (or
-- nothing, when it is gone). Ranges never overlap: a bulk insert holds the only write connection,
-- so its chunk's rowids are consecutive and new.
CREATE TABLE records_search_backlog (
    first_rowid INTEGER PRIMARY KEY,
    last_rowid  INTEGER NOT NULL,
    app_id      TEXT NOT NULL,
    entity      TEXT NOT NULL
);
CREATE INDEX records_search_backlog_by_entity ON records_search_backlog(app_id, entity);

DROP TRIGGER records_fts_insert;
CREATE TRIGGER records_fts_insert AFTER INSERT ON records
WHEN new.indexed_by_writer = 0 AND NOT EXISTS (
    SELECT 1 FROM records_search_backlog
    WHERE first_rowid <= new.rowid AND last_rowid >= new.rowid
) BEGIN
    INSERT INTO records_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;

DROP TRIGGER records_fts_update;
CREATE TRIGGER records_fts_update AFTER UPDATE OF search_text ON records
WHEN new.indexed_by_writer = old.indexed_by_writer AND NOT EXISTS (
    SELECT 1 FROM records_search_backlog
    WHERE first_rowid <= old.rowid AND last_rowid >= old.rowid
) BEGIN
    INSERT INTO records_fts(records_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO records_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;

DROP TRIGGER records_fts_delete;
CREATE TRIGGER records_fts_delete AFTER DELETE ON records
WHEN NOT EXISTS (
    SELECT 1 FROM records_search_backlog
    WHERE first_rowid <= old.rowid AND last_rowid >= old.rowid
) BEGIN
    INSERT INTO records_fts(records_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
