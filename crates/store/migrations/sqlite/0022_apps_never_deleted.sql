-- Apps are never deleted (deleting one is a soft delete, `apps.deleted_at`): the database refuses a
-- hard delete, as PostgreSQL's migration of the same name does, where records no longer carry a
-- per-row foreign key to `apps` (it cost ~9 µs of server time per imported record). Here the
-- foreign key stays (SQLite checks it with one index lookup); this trigger makes the rule the same
-- on both backends: no record can outlive its app.
CREATE TRIGGER apps_no_delete BEFORE DELETE ON apps
BEGIN
    SELECT RAISE(ABORT, 'apps are never deleted: records refer to them (soft-delete with deleted_at)');
END;
