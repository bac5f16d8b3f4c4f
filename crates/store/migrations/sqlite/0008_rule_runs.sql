-- Every real run of a rule: which rule and version, the trigger, the record, what it saw and did,
-- how long it took, and the error when it failed. Append-only.
CREATE TABLE rule_runs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL,
    rule         TEXT NOT NULL,
    app_version  INTEGER NOT NULL,
    trigger      TEXT NOT NULL,
    record_id    TEXT,
    matched      BOOLEAN NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    duration_us  INTEGER NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX rule_runs_by_rule ON rule_runs(app_id, rule, seq);
CREATE TRIGGER rule_runs_no_update BEFORE UPDATE ON rule_runs
BEGIN SELECT RAISE(ABORT, 'rule_runs is append-only'); END;
CREATE TRIGGER rule_runs_no_delete BEFORE DELETE ON rule_runs
BEGIN SELECT RAISE(ABORT, 'rule_runs is append-only'); END;
