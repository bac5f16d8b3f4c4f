-- Batch runs of a rule over all its records, page by page. The position (`after_id`) and the counts
-- advance after every page, so a run cut short by a crash resumes where it stopped.
CREATE TABLE rule_batches (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL,
    rule          TEXT NOT NULL,
    trigger_kind  TEXT NOT NULL,
    app_version   INTEGER NOT NULL,
    status        TEXT NOT NULL,
    total         INTEGER NOT NULL,
    after_id      TEXT,
    processed     INTEGER NOT NULL DEFAULT 0,
    matched       INTEGER NOT NULL DEFAULT 0,
    changed       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX rule_batches_by_rule ON rule_batches(app_id, rule, started_at);
