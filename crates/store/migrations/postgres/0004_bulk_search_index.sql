-- Kept in step with SQLite's migration 0004 (both backends carry the same migration numbers). On
-- PostgreSQL the search vector is a generated column, so bulk imports need no change here.
SELECT 1;
