-- +goose Up

-- One row per running worker process (the runbook's WorkerHeartbeat table).
-- A worker inserts its row when it starts, refreshes last_seen_at (in
-- database time) every heartbeat, and deletes it when it stops cleanly; the
-- row of a worker that died stays and shows as stale once last_seen_at is
-- older than the health check's threshold. Rows not seen for a day are
-- deleted by the cleanup.workers job.
CREATE TABLE worker_heartbeats (
    worker_id    text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    jobs_running integer     NOT NULL DEFAULT 0
);
CREATE INDEX worker_heartbeats_last_seen_at ON worker_heartbeats (last_seen_at);

-- +goose Down
DROP TABLE worker_heartbeats;
