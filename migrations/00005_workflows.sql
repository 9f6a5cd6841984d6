-- +goose Up

-- A workflow run's execution row keeps its workflow ID in idempotency_key.
-- At most one run of a workflow ID is running at a time.
CREATE UNIQUE INDEX executions_running_workflow_id ON executions (idempotency_key)
    WHERE kind = 'workflow' AND finished_at IS NULL;
-- The runs of a workflow ID, latest last.
CREATE INDEX executions_workflow_id ON executions (idempotency_key, id) WHERE kind = 'workflow';

-- The last heartbeat details of each running or retrying activity: the next
-- attempt reads them. Like a lease extension, a heartbeat is not an event;
-- the details at the end of an attempt are recorded in its outcome event.
CREATE TABLE activity_heartbeats (
    execution_id uuid        NOT NULL,
    key          text        NOT NULL,
    details      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (execution_id, key)
);

-- +goose Down
DROP TABLE activity_heartbeats;
DROP INDEX executions_workflow_id;
DROP INDEX executions_running_workflow_id;
