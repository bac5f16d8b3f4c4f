-- Timer claims: a server that picks due timers leases them until `claimed_until`, so other servers
-- skip them meanwhile (PostgreSQL claims with FOR UPDATE SKIP LOCKED); a lease that runs out (the
-- server died) makes the timer due again. Firing still consumes the timer in its transition.
ALTER TABLE flow_timers ADD COLUMN claimed_until TEXT;
