-- Events by run (sqlite; keep in step with ../postgres/0006_events_by_job.sql): the task list, the
-- machine views' holds and the floor pages look up a run's interruption or start in the log.
-- Without it each look-up scans the whole log: at 50,000 events the operator-task list (also
-- read by every scrape of /metrics) took 0.7 s for 134 runs on machines, 9 ms with it.
CREATE INDEX events_by_job ON events(job_id);
