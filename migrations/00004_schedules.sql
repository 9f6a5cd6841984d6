-- +goose Up

-- Projection: one row per schedule, folded from the schedule's own history
-- (an execution whose first event is ScheduleCreated). It lives apart from
-- executions and tasks so that the job hot path never sees schedules, and
-- it is disposable: `chronicle projections rebuild` recreates it.
CREATE TABLE schedules (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL,
    -- active, paused or deleted
    status          text        NOT NULL,
    -- what and when: cron, time zone, the job template, overlap and
    -- catch-up policies, as recorded in ScheduleCreated/ScheduleUpdated
    definition      jsonb       NOT NULL,
    -- every tick at or before cursor_tick has been decided (fired, skipped,
    -- buffered or missed)
    cursor_tick     timestamptz NOT NULL,
    -- the first tick after cursor_tick; null unless active
    next_fire_at    timestamptz,
    -- a tick held back by the buffer_one overlap policy
    buffered_tick   timestamptz,
    last_fired_tick timestamptz,
    last_job_id     uuid,
    runs            bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_seq        bigint      NOT NULL,
    last_hash       bytea       NOT NULL
);
-- A name belongs to one schedule that is not deleted.
CREATE UNIQUE INDEX schedules_name ON schedules (name) WHERE status <> 'deleted';
-- The leader's due check.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE status = 'active';

-- +goose Down
DROP TABLE schedules;
