-- record_history without AUTOINCREMENT. AUTOINCREMENT made every insert read and rewrite the
-- table's row in sqlite_sequence (~1.3 µs of ~3 per history row; BENCHMARKS.md, bulk import). The
-- table is append-only (its triggers refuse UPDATE and DELETE), so the largest seq is never removed
-- and the plain rowid rule (largest + 1) gives the same ever-growing numbers. Every row keeps its seq,
-- so the chains (`records.history_seq`, `prev_seq`, `flow_history.history_seq`) stay valid.
CREATE TABLE record_history_new (
    seq        INTEGER PRIMARY KEY,
    record_id  TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    operation  TEXT NOT NULL,
    actor      TEXT,
    at         TEXT NOT NULL,
    before     TEXT,
    after      TEXT,
    prev_seq   INTEGER
);
INSERT INTO record_history_new (seq, record_id, app_id, entity, version, operation, actor, at, before, after, prev_seq)
    SELECT seq, record_id, app_id, entity, version, operation, actor, at, before, after, prev_seq FROM record_history;
DROP TABLE record_history;
ALTER TABLE record_history_new RENAME TO record_history;
CREATE INDEX record_history_creates ON record_history(record_id) WHERE operation = 'create';
CREATE TRIGGER record_history_no_update BEFORE UPDATE ON record_history
BEGIN SELECT RAISE(ABORT, 'record_history is append-only'); END;
CREATE TRIGGER record_history_no_delete BEFORE DELETE ON record_history
BEGIN SELECT RAISE(ABORT, 'record_history is append-only'); END;
CREATE TRIGGER record_history_chain AFTER INSERT ON record_history WHEN new.operation <> 'create' BEGIN
    UPDATE records SET history_seq = new.seq WHERE id = new.record_id;
END;
