-- Flows: every transition (who, when, from, to, event, what the guard saw), tasks and approvals,
-- timers, in-app notifications, and the outbox of actions run after commit.

CREATE TABLE flow_history (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL,
    flow        TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    actor       TEXT,
    at          TEXT NOT NULL,
    inputs      TEXT NOT NULL
);
CREATE INDEX flow_history_by_record ON flow_history(record_id, seq);
CREATE TRIGGER flow_history_no_update BEFORE UPDATE ON flow_history
BEGIN SELECT RAISE(ABORT, 'flow_history is append-only'); END;
CREATE TRIGGER flow_history_no_delete BEFORE DELETE ON flow_history
BEGIN SELECT RAISE(ABORT, 'flow_history is append-only'); END;

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
    due_at        TEXT,
    escalate_to   TEXT,
    escalated_at  TEXT,
    created_at    TEXT NOT NULL,
    completed_at  TEXT,
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
    due_at     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
    fired_at   TEXT
);
CREATE INDEX flow_timers_due ON flow_timers(status, due_at);
CREATE INDEX flow_timers_by_record ON flow_timers(record_id, flow, status);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    record_id   TEXT,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    read_at     TEXT
);
CREATE INDEX notifications_by_user ON notifications(user_id, created_at);

CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
