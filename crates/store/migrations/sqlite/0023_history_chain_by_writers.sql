-- A record's latest later history row (`records.history_seq`, migration 0018) is set by the
-- statements that write history rows, no longer by a trigger. The trigger rewrote the record's row a
-- second time after each history insert (and made SQLite keep a statement journal for the insert):
-- in a nightly write-back of a million customers, a third of the one writer's time. The writers are
-- `insert_history!` and the publish migration in the store (one extra statement each, through sqlx)
-- and the bulk update, which sets `history_seq` in the same UPDATE that writes the record's data.
-- PostgreSQL keeps its trigger (its bulk path is not the one writer's).
DROP TRIGGER record_history_chain;
