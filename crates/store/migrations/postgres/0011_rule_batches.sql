-- Batch runs of a rule over all its records, page by page. The position (`after_id`) and the counts
-- advance after every page, so a run cut short by a crash resumes where it stopped.
CREATE TABLE rule_batches (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL,
    rule          TEXT NOT NULL,
    trigger_kind  TEXT NOT NULL,
    app_version   BIGINT NOT NULL,
    status        TEXT NOT NULL,
    total         BIGINT NOT NULL,
    after_id      TEXT,
    processed     BIGINT NOT NULL DEFAULT 0,
    matched       BIGINT NOT NULL DEFAULT 0,
    changed       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    started_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX rule_batches_by_rule ON rule_batches(app_id, rule, started_at);
