-- When each scheduled rule (cron, date reached) runs next. Advancing it is compare-and-set, so one
-- server runs each occurrence once.
CREATE TABLE rule_schedules (
    app_id   TEXT NOT NULL,
    rule     TEXT NOT NULL,
    next_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, rule)
);
