-- Kept in step with PostgreSQL's migration 0025 (both backends carry the same migration numbers).
-- SQLite's FTS5 index already splits words at punctuation and serves prefix and phrase queries.
SELECT 1;
