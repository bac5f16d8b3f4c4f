-- Bulk updates (shared transactions of concurrent flow transitions, nightly write-backs) re-index the
-- search text of the rows they change themselves, two set-wise statements per transaction, instead of
-- through the per-row trigger: FTS5 flushes its pending index at every statement savepoint, and the
-- trigger runs in one per row, so every changed row wrote index segments of its own. Such an update
-- marks itself by flipping `indexed_by_writer`; every other update of `search_text` leaves the flag
-- as it is and is still indexed here.
DROP TRIGGER records_fts_update;
CREATE TRIGGER records_fts_update AFTER UPDATE OF search_text ON records
WHEN new.indexed_by_writer = old.indexed_by_writer BEGIN
    INSERT INTO records_fts(records_fts, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO records_fts(rowid, search_text) VALUES (new.rowid, new.search_text);
END;
