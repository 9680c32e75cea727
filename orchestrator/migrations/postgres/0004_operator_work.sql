-- Operator work between runs (postgres; keep in step with ../sqlite/0004_operator_work.sql).
-- awaiting_since_ms: when the run began to wait for an operator (its load, or its unload);
-- NULL while it waits for nobody. held_ms: how long its machine has waited on an operator for
-- this run so far (load wait + unload wait, wall ms): a machine's held-up time is the sum of
-- its runs' held_ms plus what it waits now.
ALTER TABLE jobs ADD COLUMN awaiting_since_ms BIGINT;
ALTER TABLE jobs ADD COLUMN held_ms BIGINT NOT NULL DEFAULT 0;
-- What the machine said of a run awaiting its unload: scrapped pieces, why, and whether the
-- run failed. The units are recorded at the unload, with the operator's inspection.
ALTER TABLE jobs ADD COLUMN machine_scrapped BIGINT;
ALTER TABLE jobs ADD COLUMN machine_reason TEXT;
ALTER TABLE jobs ADD COLUMN machine_failed BIGINT;
