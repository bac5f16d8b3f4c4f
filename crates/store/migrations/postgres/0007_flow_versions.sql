-- The app version whose flow definition a record's flow run follows (kept until the run ends).
ALTER TABLE flow_history ADD COLUMN app_version BIGINT;
