-- Column snapshots: an entity's column cache (every live record's id and the typed values of the
-- fields reports asked for) persisted as encoded chunks, with the change-log cursor it is current
-- to. A server that starts cold reads these chunks and then only the records changed after the
-- cursor, instead of every document. One snapshot per entity; the runtime owns the encoding.
CREATE TABLE column_snapshots (
    app_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    app_version BIGINT NOT NULL,
    cursor_seq BIGINT NOT NULL,
    cursor_xmin BIGINT,
    row_count BIGINT NOT NULL,
    format BIGINT NOT NULL,
    parts TEXT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, entity)
);
CREATE TABLE column_snapshot_chunks (
    snapshot TEXT NOT NULL,
    part TEXT NOT NULL,
    chunk BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (snapshot, part, chunk)
);
