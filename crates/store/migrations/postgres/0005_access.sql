-- Access control: departments, users' departments, role assignments per app, token scopes, the audit
-- log, and the access epoch that cached permissions are keyed by.

CREATE TABLE departments (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT REFERENCES departments(id),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX departments_by_parent ON departments(parent_id);

ALTER TABLE users ADD COLUMN department_id TEXT REFERENCES departments(id);

CREATE TABLE role_assignments (
    app_id          TEXT NOT NULL REFERENCES apps(id),
    role            TEXT NOT NULL,
    principal_kind  TEXT NOT NULL CHECK (principal_kind IN ('user', 'department')),
    principal_id    TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT,
    PRIMARY KEY (app_id, role, principal_kind, principal_id)
);
CREATE INDEX role_assignments_by_principal ON role_assignments(principal_kind, principal_id);

ALTER TABLE auth_tokens ADD COLUMN scopes TEXT;
ALTER TABLE auth_tokens ADD COLUMN id TEXT;
CREATE UNIQUE INDEX auth_tokens_by_id ON auth_tokens(id);

CREATE TABLE access_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO access_epoch (id, value) VALUES (1, 1);

CREATE TABLE audit_log (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT,
    action      TEXT NOT NULL,
    app_id      TEXT,
    target      TEXT,
    outcome     TEXT NOT NULL,
    address     TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_by_action_target ON audit_log(action, target, at);
CREATE INDEX audit_by_action_address ON audit_log(action, address, at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
