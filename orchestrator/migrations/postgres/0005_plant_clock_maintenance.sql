-- The plant clock's anchor: at wall instant wall_origin_ms the plant clock read plant_origin_ms,
-- and it runs at time_scale. One row, written on the first start; a restart continues from it,
-- a new time_scale re-anchors it at the plant time it had reached.
CREATE TABLE plant_clock (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    wall_origin_ms BIGINT NOT NULL,
    plant_origin_ms BIGINT NOT NULL,
    time_scale DOUBLE PRECISION NOT NULL
);
-- Maintenance per machine and task (the config's intervals): whether it is due (since due_ms)
-- and when it was last done (wall ms). A row appears with the task's first maintenance_due;
-- runs and run hours are counted from the jobs table since done_ms.
CREATE TABLE maintenance (
    machine_id TEXT NOT NULL REFERENCES machines(id),
    task TEXT NOT NULL,
    due BIGINT NOT NULL,
    due_ms BIGINT,
    done_ms BIGINT,
    PRIMARY KEY (machine_id, task)
);
CREATE INDEX jobs_by_machine ON jobs(machine_id, started_ms);
