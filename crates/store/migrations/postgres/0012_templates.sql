-- The template gallery and where installed apps came from.
--
-- templates: every published template version (the bundle as JSON text, the package checksum and the
-- publisher key that signed it). Bundled templates live in the binary and are not stored here.
CREATE TABLE templates (
    id            TEXT NOT NULL,
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    bundle        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    signed_by     TEXT,
    published_at  TIMESTAMPTZ NOT NULL,
    published_by  TEXT,
    PRIMARY KEY (id, version)
);

-- The template version an app was installed from or last upgraded to: the base of the next
-- three-way merge.
CREATE TABLE app_templates (
    app_id            TEXT PRIMARY KEY,
    template_id       TEXT NOT NULL,
    template_version  TEXT NOT NULL,
    base_bundle       TEXT NOT NULL,
    installed_at      TIMESTAMPTZ NOT NULL
);

-- Every upgrade, with the app version before it (kept, so the upgrade can be rolled back) and the
-- merge report.
CREATE TABLE app_upgrades (
    id                     TEXT PRIMARY KEY,
    app_id                 TEXT NOT NULL,
    template_id            TEXT NOT NULL,
    from_template_version  TEXT NOT NULL,
    to_template_version    TEXT NOT NULL,
    from_app_version       BIGINT NOT NULL,
    to_app_version         BIGINT NOT NULL,
    previous_base          TEXT NOT NULL,
    report                 TEXT NOT NULL,
    upgraded_at            TIMESTAMPTZ NOT NULL,
    upgraded_by            TEXT,
    rolled_back_at         TIMESTAMPTZ
);
CREATE INDEX app_upgrades_by_app ON app_upgrades(app_id, upgraded_at);
