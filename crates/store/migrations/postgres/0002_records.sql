-- Records of every entity of every app, as JSON documents keyed by stable field uid (see ARCHITECTURE.md).
CREATE TABLE records (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    entity      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    data        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT,
    updated_at  TIMESTAMPTZ NOT NULL,
    updated_by  TEXT,
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX records_by_entity ON records(app_id, entity, id);

-- Every change of every record: who, when, before and after.
CREATE TABLE record_history (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id  TEXT NOT NULL,
    app_id     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    operation  TEXT NOT NULL,
    actor      TEXT,
    at         TIMESTAMPTZ NOT NULL,
    before     JSONB,
    after      JSONB
);
CREATE INDEX record_history_by_record ON record_history(record_id, seq);
CREATE FUNCTION record_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'record_history is append-only';
END;
$$;
CREATE TRIGGER record_history_no_update_or_delete BEFORE UPDATE OR DELETE ON record_history
    FOR EACH ROW EXECUTE FUNCTION record_history_append_only();

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
    value   BIGINT NOT NULL,
    PRIMARY KEY (app_id, entity, field, period)
);
