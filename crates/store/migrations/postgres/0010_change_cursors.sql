-- Readers that follow one entity's record changes (the report column cache) scan by subject.
-- On PostgreSQL a change with a lower seq can commit after one with a higher seq, so each change also
-- records its transaction id: a reader re-reads every change whose transaction was still running
-- (xid ≥ the snapshot's xmin) when it last looked, and never misses a late commit.
ALTER TABLE change_log ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX change_log_subject ON change_log(app_id, subject, seq);
CREATE INDEX change_log_xid ON change_log(app_id, subject, xid);
