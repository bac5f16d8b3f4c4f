-- Readers that follow one entity's record changes (the report column cache) scan by subject.
-- SQLite has one writer, so sequence numbers become visible in order; no transaction id is needed.
CREATE INDEX change_log_subject ON change_log(app_id, subject, seq);
