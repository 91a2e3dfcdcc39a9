-- A run's sandbox and its git steps, for the dashboard's job detail.

-- The sandbox a run worked in: its args' `sandbox_id`, or the one a clone made (its
-- result's). NULL for a run with none (a `change` works in a sandbox of its own, gone when
-- it answers) and for runs recorded before this migration.
ALTER TABLE job_runs ADD COLUMN sandbox_id TEXT;
-- Each git command the run ran, in order: a JSON array of
-- {"command", "phase", "at_ms", "ms", "outcome", "code"?} (gitfleet_contract::steps::GitStep),
-- the command from a fixed list, never an argument. At most 200; the steps past that are
-- counted in git_steps_dropped. NULL while the run is running, and for runs recorded before
-- this migration.
ALTER TABLE job_runs ADD COLUMN git_steps JSONB;
ALTER TABLE job_runs ADD COLUMN git_steps_dropped INTEGER NOT NULL DEFAULT 0;
