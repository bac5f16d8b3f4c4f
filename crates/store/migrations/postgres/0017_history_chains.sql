-- Per-record history chains instead of by-record indexes (see the SQLite migration of the same name
-- for why and the measurement): a record's `create` row is found through a partial index of creates;
-- `records.history_seq` names its latest later row (kept by the trigger below), each later row names
-- the one before it (`prev_seq`, set by the INSERT; NULL when that one is the create), and each
-- flow-history row names the record-history row that was the record's latest when it was written.

ALTER TABLE records ADD COLUMN history_seq BIGINT;
ALTER TABLE record_history ADD COLUMN prev_seq BIGINT;
ALTER TABLE flow_history ADD COLUMN history_seq BIGINT;

-- The history tables stay append-only; the triggers step aside only for this backfill.
ALTER TABLE record_history DISABLE TRIGGER record_history_no_update_or_delete;
ALTER TABLE flow_history DISABLE TRIGGER flow_history_no_update_or_delete;
UPDATE record_history h SET prev_seq = p.prev
FROM (SELECT seq, lag(seq) OVER (PARTITION BY record_id ORDER BY seq) AS prev
      FROM record_history WHERE operation <> 'create') p
WHERE p.seq = h.seq AND p.prev IS NOT NULL;
UPDATE records r SET history_seq = l.last
FROM (SELECT record_id, max(seq) AS last FROM record_history WHERE operation <> 'create' GROUP BY record_id) l
WHERE l.record_id = r.id;
UPDATE flow_history f SET history_seq = l.last
FROM (SELECT record_id, max(seq) AS last FROM record_history GROUP BY record_id) l
WHERE l.record_id = f.record_id;
ALTER TABLE record_history ENABLE TRIGGER record_history_no_update_or_delete;
ALTER TABLE flow_history ENABLE TRIGGER flow_history_no_update_or_delete;

CREATE INDEX record_history_creates ON record_history(record_id) WHERE operation = 'create';
DROP INDEX record_history_by_record;
DROP INDEX flow_history_by_record;
CREATE INDEX flow_history_by_history ON flow_history(history_seq);

CREATE FUNCTION record_history_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE records SET history_seq = NEW.seq WHERE id = NEW.record_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER record_history_chain AFTER INSERT ON record_history
    FOR EACH ROW WHEN (NEW.operation <> 'create') EXECUTE FUNCTION record_history_chain();
