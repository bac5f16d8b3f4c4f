-- Foundation schema (PostgreSQL). Append-only: never edit a migration after it lands; add a new one.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Sign-in sessions and API tokens. Only a SHA-256 of the token is stored.
CREATE TABLE auth_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    name         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id);

CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    current_version BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ
);

-- Every published bundle is kept. TEXT, not JSONB, so an export is byte-for-byte what was published.
CREATE TABLE app_versions (
    app_id       TEXT NOT NULL REFERENCES apps(id),
    version      BIGINT NOT NULL,
    semver       TEXT NOT NULL,
    bundle       TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    published_by TEXT,
    PRIMARY KEY (app_id, version)
);

-- Append-only change log with a global sequence; engines use it for triggers and caches.
CREATE TABLE change_log (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      TEXT,
    subject     TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    operation   TEXT NOT NULL,
    actor       TEXT,
    at          TIMESTAMPTZ NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX change_log_app ON change_log(app_id, seq);

CREATE FUNCTION change_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'change_log is append-only';
END;
$$;
CREATE TRIGGER change_log_no_update_or_delete BEFORE UPDATE OR DELETE ON change_log
    FOR EACH ROW EXECUTE FUNCTION change_log_append_only();
