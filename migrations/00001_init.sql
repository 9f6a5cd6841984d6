-- +goose Up

-- The event log: every change of every execution, append-only. Rows are
-- never updated; they are deleted only by retention.
CREATE TABLE events (
    execution_id uuid        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq > 0),
    type         text        NOT NULL,
    data         jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL,
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE INDEX events_recorded_at ON events USING brin (recorded_at);

-- Projection: the current state of each execution, folded from its events.
CREATE TABLE executions (
    id              uuid        PRIMARY KEY,
    kind            text        NOT NULL,
    type            text        NOT NULL,
    queue           text        NOT NULL,
    priority        smallint    NOT NULL,
    status          text        NOT NULL,
    payload         jsonb       NOT NULL,
    attempt         integer     NOT NULL,
    budget_start    integer     NOT NULL,
    max_attempts    integer     NOT NULL,
    retry_policy    jsonb       NOT NULL,
    run_at          timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    idempotency_key text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    last_seq        bigint      NOT NULL,
    last_hash       bytea       NOT NULL
);
CREATE INDEX executions_status_type ON executions (status, type);

-- Projection: the ready queue. Small and hot: a task leaves it when its
-- execution stops needing a worker.
CREATE TABLE tasks (
    execution_id     uuid        NOT NULL,
    key              text        NOT NULL DEFAULT '',
    queue            text        NOT NULL,
    priority         smallint    NOT NULL,
    run_at           timestamptz NOT NULL,
    attempt          integer     NOT NULL,
    leased_by        text,
    lease_expires_at timestamptz,
    PRIMARY KEY (execution_id, key)
);
CREATE INDEX tasks_ready ON tasks (queue, priority, run_at) WHERE lease_expires_at IS NULL;
CREATE INDEX tasks_leased ON tasks (lease_expires_at) WHERE lease_expires_at IS NOT NULL;

-- Enqueue de-duplication: an idempotency key maps to one execution until it expires.
CREATE TABLE enqueue_keys (
    key          text        PRIMARY KEY,
    execution_id uuid        NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- Leader election for maintenance: one row per role, held until it expires.
CREATE TABLE leaders (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE leaders;
DROP TABLE enqueue_keys;
DROP TABLE tasks;
DROP TABLE executions;
DROP TABLE events;
