-- Merges of duplicate records, kept so a merge can be undone: the survivor's values before, the
-- merged records, and every reference that was moved from a merged record to the survivor.
CREATE TABLE record_merges (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL,
    entity           TEXT NOT NULL,
    survivor_id      TEXT NOT NULL,
    merged_ids       TEXT NOT NULL,
    survivor_before  TEXT NOT NULL,
    survivor_changes TEXT NOT NULL,
    moved            TEXT NOT NULL,
    merged_at        TEXT NOT NULL,
    merged_by        TEXT,
    undone_at        TEXT
);
CREATE INDEX record_merges_by_survivor ON record_merges(app_id, survivor_id);
