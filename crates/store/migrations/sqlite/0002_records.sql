-- Records of every entity of every app, as JSON documents keyed by stable field uid (see ARCHITECTURE.md).
CREATE TABLE records (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    entity      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT,
    deleted_at  TEXT
);
CREATE INDEX records_by_entity ON records(app_id, entity, id);

-- Every change of every record: who, when, before and after.
CREATE TABLE record_history (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    operation  TEXT NOT NULL,
    actor      TEXT,
    at         TEXT NOT NULL,
    before     TEXT,
    after      TEXT
);
CREATE INDEX record_history_by_record ON record_history(record_id, seq);
CREATE TRIGGER record_history_no_update BEFORE UPDATE ON record_history
BEGIN SELECT RAISE(ABORT, 'record_history is append-only'); END;
CREATE TRIGGER record_history_no_delete BEFORE DELETE ON record_history
BEGIN SELECT RAISE(ABORT, 'record_history is append-only'); END;

-- Unique field values of live records; the primary key enforces uniqueness on both backends.
CREATE TABLE record_unique (
    app_id     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (app_id, entity, field, value)
);
CREATE INDEX record_unique_by_record ON record_unique(record_id);

-- Counters of auto-number fields, per period (e.g. per year for CUS-{YYYY}-{0000}).
CREATE TABLE record_counters (
    app_id  TEXT NOT NULL,
    entity  TEXT NOT NULL,
    field   TEXT NOT NULL,
    period  TEXT NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (app_id, entity, field, period)
);
