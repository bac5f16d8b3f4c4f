-- Per-record history chains instead of by-record indexes.
--
-- A record's history used to be found through `record_history_by_record` and its flow history through
-- `flow_history_by_record`: indexes keyed by record, so every change wrote one leaf page of each at the
-- record's own place, however many changes shared the commit (64 % of the pages a flow transition
-- wrote; BENCHMARKS.md, "Persisted flow transitions on SQLite"). Now:
-- - a record's `create` row is found through a partial index of creates only (written once per record,
--   as before, so imports cost what they did);
-- - every later row is on a chain: `records.history_seq` names the latest one (kept by the trigger
--   below, in the row the change rewrites anyway) and each names the one before it (`prev_seq`, set
--   by the INSERT from `records.history_seq`; NULL when the one before is the create);
-- - each flow-history row names the record-history row that was the record's latest when it was
--   written (`history_seq`; indexed, but that key only grows, so new entries land on the last leaf).
-- So an update appends to the ends of its tables and writes no page at a place of its own besides
-- the record's row.

ALTER TABLE records ADD COLUMN history_seq INTEGER;
ALTER TABLE record_history ADD COLUMN prev_seq INTEGER;
ALTER TABLE flow_history ADD COLUMN history_seq INTEGER;

-- The history tables stay append-only; the triggers step aside only for this backfill.
DROP TRIGGER record_history_no_update;
DROP TRIGGER flow_history_no_update;
UPDATE record_history SET prev_seq = (
    SELECT max(p.seq) FROM record_history p
    WHERE p.record_id = record_history.record_id AND p.seq < record_history.seq AND p.operation <> 'create')
WHERE operation <> 'create';
UPDATE records SET history_seq = (
    SELECT max(h.seq) FROM record_history h WHERE h.record_id = records.id AND h.operation <> 'create');
UPDATE flow_history SET history_seq = (
    SELECT max(h.seq) FROM record_history h WHERE h.record_id = flow_history.record_id);
CREATE TRIGGER record_history_no_update BEFORE UPDATE ON record_history
BEGIN SELECT RAISE(ABORT, 'record_history is append-only'); END;
CREATE TRIGGER flow_history_no_update BEFORE UPDATE ON flow_history
BEGIN SELECT RAISE(ABORT, 'flow_history is append-only'); END;

CREATE INDEX record_history_creates ON record_history(record_id) WHERE operation = 'create';
DROP INDEX record_history_by_record;
DROP INDEX flow_history_by_record;
CREATE INDEX flow_history_by_history ON flow_history(history_seq);

CREATE TRIGGER record_history_chain AFTER INSERT ON record_history WHEN new.operation <> 'create' BEGIN
    UPDATE records SET history_seq = new.seq WHERE id = new.record_id;
END;
