-- Access control: departments, users' departments, role assignments per app, token scopes, the audit
-- log, and the access epoch that cached permissions are keyed by.

CREATE TABLE departments (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_id   TEXT REFERENCES departments(id),
    created_at  TEXT NOT NULL
);
CREATE INDEX departments_by_parent ON departments(parent_id);

ALTER TABLE users ADD COLUMN department_id TEXT REFERENCES departments(id);

-- A role of an app given to a user or to a department (and so to everyone in it and below it).
CREATE TABLE role_assignments (
    app_id          TEXT NOT NULL REFERENCES apps(id),
    role            TEXT NOT NULL,
    principal_kind  TEXT NOT NULL CHECK (principal_kind IN ('user', 'department')),
    principal_id    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT,
    PRIMARY KEY (app_id, role, principal_kind, principal_id)
);
CREATE INDEX role_assignments_by_principal ON role_assignments(principal_kind, principal_id);

-- API tokens may be limited to scopes (JSON array of strings); NULL means the user's full rights.
ALTER TABLE auth_tokens ADD COLUMN scopes TEXT;
ALTER TABLE auth_tokens ADD COLUMN id TEXT;
CREATE UNIQUE INDEX auth_tokens_by_id ON auth_tokens(id);

-- Bumped in the same transaction as every change to users, departments, assignments or roles.
CREATE TABLE access_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  INTEGER NOT NULL
);
INSERT INTO access_epoch (id, value) VALUES (1, 1);

-- Who did what, when and from where. Append-only.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
