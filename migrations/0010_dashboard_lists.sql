-- The dashboard's delayed and dead views and its Sandboxes page over a big history (issue
-- 11's speed goal; `ui-bench`, BENCHMARKS.md). 0009 gave every filter of the jobs list an
-- index; these serve the views that list one state with a filter, and count them.

-- One state's jobs of one organization, newest first, and their count: the dead view of an
-- organization's key, the jobs list's `?status=` for one. `deleted_at` is included so the
-- count of a view (which leaves out jobs deleted by hand) is an index-only scan: with the
-- state's and the organization's indexes apart the planner ANDed 30,000 dead jobs with the
-- organization's 155,000 rows and read the heap of each match (97 ms; now under 1 ms).
CREATE INDEX jobs_status_org_idx ON jobs (status, org_id, enqueued_at DESC) INCLUDE (deleted_at);
-- One state's jobs of one op, newest first, and their count: the dead and delayed views'
-- `?op=`. Without it the view walked the state's index through every other op's jobs (all
-- 30,000 dead ones for an op with none: 240 ms).
CREATE INDEX jobs_status_op_idx ON jobs (status, op, enqueued_at DESC) INCLUDE (deleted_at);
-- The Sandboxes page and `GET /v1/sandboxes` list the registry most recently used first:
-- without an index in that order every page sorted the whole registry (100,000 rows: 100 ms;
-- now 0.05 ms).
CREATE INDEX git_sandboxes_used_idx ON git_sandboxes (last_used_at DESC, sandbox_id);
