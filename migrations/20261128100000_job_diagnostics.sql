-- Effects of the worker's built-in diagnostic job (`diagnostics.record`): one row per key
-- however often the job ran, and how often it did, which makes at-least-once delivery and
-- idempotent effects observable. Rows are only written by that job, run by hand or by tests.
CREATE TABLE job_diagnostics (
    key             text PRIMARY KEY,
    runs            integer NOT NULL DEFAULT 1,
    first_run_at    timestamptz NOT NULL DEFAULT now()
);
