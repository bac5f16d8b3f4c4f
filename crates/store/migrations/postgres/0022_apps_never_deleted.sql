-- Records no longer check `app_id` against `apps` row by row. The foreign key ran a referential
-- check (a locking `SELECT` on `apps`) for every inserted record: `\copy` of 100,000 imported
-- customers took 4.09 s with it and 3.15 s without (BENCHMARKS.md, PostgreSQL import). What it
-- guarded — no record outlives its app — now holds for every app at once: apps are never deleted
-- (deleting one is a soft delete, `apps.deleted_at`), and the database refuses a hard delete or a
-- truncate of `apps` outright. Records get their `app_id` only from an app the runtime has loaded.
ALTER TABLE records DROP CONSTRAINT records_app_id_fkey;

CREATE FUNCTION apps_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'apps are never deleted: records refer to them (soft-delete with deleted_at)';
END $$;
CREATE TRIGGER apps_no_delete BEFORE DELETE OR TRUNCATE ON apps
    FOR EACH STATEMENT EXECUTE FUNCTION apps_never_deleted();
