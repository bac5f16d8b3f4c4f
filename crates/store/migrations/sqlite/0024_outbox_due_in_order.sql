-- The outbox is delivered oldest first: `due_outbox` takes the pending entries in `seq` order. With
-- the index on (status, next_attempt_at), every pass sorted all pending entries to take the first
-- ones (a first night's 340,000 lifecycle events at a million customers: ~50 ms per pass of 5,000,
-- most of the pass's claim). Pending entries by `seq`, with their due time, are read in order and
-- stop at the pass's size; delivered entries leave the index.
DROP INDEX outbox_pending;
CREATE INDEX outbox_due ON outbox(seq, next_attempt_at) WHERE status = 'pending';
