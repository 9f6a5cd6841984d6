-- +goose Up

-- Idempotent steps across jobs (sdk.WithIdempotency): one row per key.
-- A 'running' row is a claim by one attempt of one job: it is alive while
-- that attempt holds its lease (its row in tasks), so a crashed owner's claim
-- is taken over at once instead of blocking the key until it expires. A
-- 'completed' row remembers the step's result until expires_at. Within one
-- job's retries the history (StepCompleted events) is the record; this
-- table is what other jobs see.
CREATE TABLE idempotency_keys (
    key           text        PRIMARY KEY,
    owner_id      uuid        NOT NULL,
    owner_attempt integer     NOT NULL,
    state         text        NOT NULL CHECK (state IN ('running', 'completed')),
    result        jsonb,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    expires_at    timestamptz NOT NULL
);
-- cleanup.idempotency_keys deletes expired rows by this index.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- Retention (cleanup.dead_letters, cleanup.histories) finds finished
-- executions by status and age without scanning live ones.
CREATE INDEX executions_finished ON executions (status, finished_at) WHERE finished_at IS NOT NULL;

-- +goose Down
DROP INDEX executions_finished;
DROP TABLE idempotency_keys;
