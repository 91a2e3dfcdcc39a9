-- Cancelled jobs, and the history's filters by agent and sandbox.

-- A job taken out of its queue before it ran (`Queue::cancel`) ends `cancelled`. A run is
-- never cancelled (a running job cannot be), so `job_runs.outcome` keeps its four values.
-- The new set is a superset of the old one: every existing row passes.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('waiting', 'delayed', 'running', 'done', 'dead', 'cancelled'));

-- The history lists one agent's jobs, or one sandbox's, newest first (`GET /v1/jobs?agent=`,
-- `?sandbox=`); status, op, organization and time already have theirs (0001), in the
-- listing's order (`enqueued_at DESC`, ties sorted in memory; its page cursor bounds the
-- scan). Partial: most jobs name no sandbox (a clone, a change), and internal ones no agent.
CREATE INDEX jobs_agent_idx ON jobs (agent_id, enqueued_at DESC) WHERE agent_id IS NOT NULL;
CREATE INDEX jobs_sandbox_idx ON jobs (sandbox_id, enqueued_at DESC) WHERE sandbox_id IS NOT NULL;
