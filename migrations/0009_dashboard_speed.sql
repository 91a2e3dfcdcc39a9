-- The dashboard over a big history (issue 11's speed goal, measured by `ui-bench` over
-- 1,000,000 job rows: BENCHMARKS.md): the filters that had no index of their own, and the
-- overview's throughput chart read from an index alone.

-- The history of one task, newest first (`?task=`): without it the filter read the whole
-- table (a parallel sequential scan, 120 ms at a million rows). Partial: internal jobs
-- name no task.
CREATE INDEX jobs_task_idx ON jobs (task_id, enqueued_at DESC) WHERE task_id IS NOT NULL;
-- The history of one queue, newest first (`?queue=`): without it a queue walked the time
-- index through every other queue's jobs, as far back as its 50th job (all of the table
-- for a queue that has few).
CREATE INDEX jobs_queue_idx ON jobs (queue, enqueued_at DESC);
-- A repository's sandboxes: the history's `?repo=` finds them here, then their jobs by
-- `jobs_sandbox_idx` (0004); the Sandboxes and Repositories views filter by it too.
CREATE INDEX git_sandboxes_repo_idx ON git_sandboxes (repo_url);
-- The overview counts the jobs finished in the last day per minute, by state, for one
-- organization or all (`finished_per_minute`): with the state and organization in the
-- index that is an index-only scan, not a heap read of every job of the day (tens of
-- thousands of rows on a busy fleet). It replaces `jobs_finished_idx` (0001), a prefix of
-- it, which serves nothing this one does not.
CREATE INDEX jobs_finished_state_idx ON jobs (finished_at) INCLUDE (status, org_id);
DROP INDEX jobs_finished_idx;
-- Search within one organization (every search of an organization's key, and an admin's
-- with `?org=`): one GIN index over the organization and the message's trigrams, so the
-- organization narrows the trigram match inside the index. With the two indexes apart the
-- planner ANDed the trigram matches with every row of the organization's (155,000 for the
-- biggest in ui-bench's history) to count a page's total. `btree_gin` (the equality
-- operators of plain types in a GIN index) ships with PostgreSQL, as `pg_trgm` does, and
-- is a trusted extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX jobs_org_error_trgm_idx ON jobs USING gin (org_id, error_message gin_trgm_ops);
