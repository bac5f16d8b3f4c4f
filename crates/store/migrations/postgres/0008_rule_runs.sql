-- Every real run of a rule: which rule and version, the trigger, the record, what it saw and did,
-- how long it took, and the error when it failed. Append-only.
CREATE TABLE rule_runs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id       TEXT NOT NULL,
    rule         TEXT NOT NULL,
    app_version  BIGINT NOT NULL,
    trigger      TEXT NOT NULL,
    record_id    TEXT,
    matched      BOOLEAN NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    duration_us  BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX rule_runs_by_rule ON rule_runs(app_id, rule, seq);
CREATE FUNCTION rule_runs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rule_runs is append-only';
END;
$$;
CREATE TRIGGER rule_runs_no_update_or_delete BEFORE UPDATE OR DELETE ON rule_runs
    FOR EACH ROW EXECUTE FUNCTION rule_runs_append_only();
