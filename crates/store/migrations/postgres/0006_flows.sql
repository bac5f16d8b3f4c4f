-- Flows: every transition (who, when, from, to, event, what the guard saw), tasks and approvals,
-- timers, in-app notifications, and the outbox of actions run after commit.

CREATE TABLE flow_history (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      TEXT NOT NULL,
    flow        TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    actor       TEXT,
    at          TIMESTAMPTZ NOT NULL,
    inputs      TEXT NOT NULL
);
CREATE INDEX flow_history_by_record ON flow_history(record_id, seq);
CREATE FUNCTION flow_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flow_history is append-only';
END;
$$;
CREATE TRIGGER flow_history_no_update_or_delete BEFORE UPDATE OR DELETE ON flow_history
    FOR EACH ROW EXECUTE FUNCTION flow_history_append_only();

CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL,
    flow          TEXT NOT NULL,
    entity        TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    state         TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('task', 'approval')),
    title         TEXT NOT NULL,
    assignee      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    outcome       TEXT,
    outcomes      TEXT NOT NULL,
    due_at        TIMESTAMPTZ,
    escalate_to   TEXT,
    escalated_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    completed_by  TEXT
);
CREATE INDEX tasks_by_assignee ON tasks(app_id, assignee, status);
CREATE INDEX tasks_by_record ON tasks(record_id, flow, status);
CREATE INDEX tasks_by_due ON tasks(status, due_at);

CREATE TABLE flow_timers (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    flow       TEXT NOT NULL,
    entity     TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    event      TEXT NOT NULL,
    due_at     TIMESTAMPTZ NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
    fired_at   TIMESTAMPTZ
);
CREATE INDEX flow_timers_due ON flow_timers(status, due_at);
CREATE INDEX flow_timers_by_record ON flow_timers(record_id, flow, status);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    record_id   TEXT,
    message     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    read_at     TIMESTAMPTZ
);
CREATE INDEX notifications_by_user ON notifications(user_id, created_at);

CREATE TABLE outbox (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
