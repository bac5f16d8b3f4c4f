-- Saved list views: a name, the list's filter, sort and columns (spec, JSON text), owned by a user
-- and optionally shared with everyone who can read the entity.
CREATE TABLE saved_views (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    entity     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    shared     BOOLEAN NOT NULL DEFAULT FALSE,
    spec       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX saved_views_by_owner ON saved_views(app_id, entity, owner, name);
