-- Word search that the GIN index serves, matching SQLite's FTS5 (unicode61) word for word.
-- The search vector is built from the search text with punctuation (ASCII, and the Chinese and Latin
-- marks in common use) turned into spaces, so an e-mail address, a code such as CUS-2026-0001 or a
-- hyphenated word is indexed as its words, as FTS5 splits them, whatever the cluster's locale (in the
-- C locale PostgreSQL's parser would glue non-ASCII punctuation to a word); queries are phrases of
-- those words, the last one matched as a prefix (`query.rs`, `push_search`). Before this, queries
-- OR-ed a `LIKE '%word%'` onto the vector match, which no index can serve: every search scanned the
-- entity, and the GIN index was kept up on every write for nothing. `regexp_replace` costs ~1 µs a
-- row here (`translate` with the same characters ~12 µs). This rewrites the records table once.
DROP INDEX records_search;
ALTER TABLE records DROP COLUMN search_vector;
ALTER TABLE records ADD COLUMN search_vector TSVECTOR GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(search_text, '[!-/:-@[-`{-~，。、；：？！“”‘’（）《》〈〉【】「」『』…—～·«»¿¡]+', ' ', 'g'))
) STORED;
CREATE INDEX records_search ON records USING GIN (search_vector);
