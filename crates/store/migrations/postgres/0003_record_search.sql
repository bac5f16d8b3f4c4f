-- Full-text search over records' searchable fields: a tsvector for word queries, and the lower-cased
-- text itself for substring queries (Chinese has no spaces between words).
ALTER TABLE records ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN search_vector TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
CREATE INDEX records_search ON records USING GIN (search_vector);
