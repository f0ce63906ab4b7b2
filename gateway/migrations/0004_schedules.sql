-- Cron schedules: each function's schedules, the last tick each one
-- claimed (a compare-and-set on `last_tick` lets exactly one claimer fire a
-- tick), and each schedule's most recent runs.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    last_tick BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX schedules_function ON schedules (function);

CREATE TABLE schedule_runs (
    id BIGSERIAL PRIMARY KEY,
    schedule TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    scheduled BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    duration_ms DOUBLE PRECISION NOT NULL,
    catch_up BOOLEAN NOT NULL,
    -- The start of the response body, or the error's message.
    response TEXT
);
CREATE INDEX schedule_runs_schedule ON schedule_runs (schedule, id);
