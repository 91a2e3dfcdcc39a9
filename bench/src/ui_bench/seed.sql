-- ui-bench's history: 1,000,000 job rows over the last 30 days, their sandboxes, and runs
-- with git steps for some. Plain SQL over generate_series, so Postgres makes the rows
-- itself (no round trip per row). :jobs rows are made; the counts below scale with it.
-- Deterministic but for the clock: row i is always the same job.

-- The sandbox registry: one sandbox per 10 jobs, on 500 repositories (a few popular ones),
-- 200 of them live, a tenth of the terminated ones released to the cache.
INSERT INTO git_sandboxes (sandbox_id, worker_id, org_id, agent_id, task_id, repo_url, branch,
                           agent_branch, status, last_operation, created_at, last_used_at,
                           terminated_at, use_count, is_pooled, source, updated_at)
SELECT 'sb-' || lpad(s::text, 7, '0'),
       'worker-' || (s % 16),
       'org-' || lpad((floor(power(((s * 2654435761) % 10007) / 10007.0, 2) * 40))::int::text, 2, '0'),
       'agent-' || ((s * 13) % 2000),
       'task-' || ((s * 31) % 50000),
       'https://git.example.com/team-' || (s % 40) || '/repo-'
           || (floor(power(((s * 2654435761) % 1000) / 1000.0, 3) * 500))::int || '.git',
       'main',
       'agent/' || ((s * 13) % 2000) || '/' || s,
       CASE WHEN s > :sandboxes - 200 THEN (ARRAY['ready', 'in_use', 'in_use', 'initializing'])[1 + s % 4]
            WHEN s % 97 = 0 THEN 'error' ELSE 'terminated' END,
       (ARRAY['status', 'commit', 'push', 'diff'])[1 + s % 4],
       now() - ((:sandboxes - s)::float8 / :sandboxes) * interval '30 days',
       now() - ((:sandboxes - s)::float8 / :sandboxes) * interval '30 days' + interval '5 minutes',
       CASE WHEN s > :sandboxes - 200 THEN NULL
            ELSE now() - ((:sandboxes - s)::float8 / :sandboxes) * interval '30 days' + interval '10 minutes' END,
       1 + s % 12,
       s % 10 = 0 AND s <= :sandboxes - 200,
       (ARRAY['pool', 'cache', 'cache', 'template', 'cold'])[1 + s % 5],
       now() - ((:sandboxes - s)::float8 / :sandboxes) * interval '30 days' + interval '10 minutes'
  FROM generate_series(1::bigint, :sandboxes) AS s;

-- The jobs. Time goes with i (row i is enqueued i/jobs of the way through the 30 days), and
-- its id is a ULID of that time (10 characters of milliseconds, 16 of hash), so ids sort as
-- the queue's do. Organizations are skewed (org-00 has the most), 2% have none (internal).
CREATE TEMP TABLE seed_jobs AS
SELECT i,
       now() - ((:jobs - i)::float8 / :jobs) * interval '30 days'
           - ((i * 7919) % 1000) * interval '1 millisecond' AS enq,
       -- status: mostly done; the newest few are waiting, running or delayed
       CASE WHEN i > :jobs - 300 THEN (ARRAY['waiting', 'running', 'delayed'])[1 + i % 3]
            WHEN i % 100 < 3 THEN 'dead'
            WHEN i % 100 = 3 THEN 'cancelled'
            ELSE 'done' END AS status,
       (ARRAY['status', 'status', 'status', 'diff', 'diff', 'commit', 'commit', 'push', 'log',
              'clone', 'change', 'checkout', 'branch', 'merge', 'echo', 'fetch'])[1 + (i * 11) % 16] AS op,
       CASE WHEN i % 50 = 0 THEN NULL
            ELSE 'org-' || lpad((floor(power(((sb * 2654435761) % 10007) / 10007.0, 2) * 40))::int::text, 2, '0') END AS org,
       sb
  FROM generate_series(1::bigint, :jobs) AS i, LATERAL (SELECT 1 + ((i * 104729) % :sandboxes) AS sb) AS l;

INSERT INTO jobs (job_id, op, queue, org_id, agent_id, task_id, sandbox_id, status, attempts,
                  phase, max_attempts, worker_id, error_kind, error_message, result, enqueued_at,
                  started_at, finished_at, retry_at, updated_at)
SELECT -- a ULID: 48 bits of ms in 10 Crockford base32 characters, then 16 of an md5
       (SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
                                 ((floor(extract(epoch FROM enq) * 1000)::bigint >> (5 * k)) & 31)::int + 1, 1), ''
                          ORDER BY k DESC)
          FROM generate_series(0, 9) AS k)
           || upper(substr(md5(i::text), 1, 16)),
       op,
       CASE WHEN op IN ('clone', 'change', 'echo') THEN 'default'
            WHEN i % 7 = 0 THEN 'priority'
            ELSE 'own:worker-' || (sb % 16) END,
       org,
       CASE WHEN org IS NULL THEN NULL ELSE 'agent-' || ((sb * 13) % 2000) END,
       CASE WHEN org IS NULL THEN NULL ELSE 'task-' || ((sb * 31) % 50000) END,
       CASE WHEN op IN ('clone', 'change', 'echo') THEN NULL ELSE 'sb-' || lpad(sb::text, 7, '0') END,
       status,
       CASE WHEN status IN ('waiting', 'delayed', 'cancelled') THEN 0
            WHEN status = 'dead' THEN 3 WHEN i % 20 = 0 THEN 2 ELSE 1 END,
       3,
       CASE WHEN status IN ('waiting', 'delayed', 'cancelled') THEN NULL ELSE 1 END,
       CASE WHEN status IN ('waiting', 'delayed', 'cancelled') THEN NULL ELSE 'worker-' || (sb % 16) END,
       CASE WHEN status = 'dead' THEN (ARRAY['conflict', 'network', 'conflict', 'timeout', 'sandbox_not_found',
                                             'invalid_input', 'auth', 'internal'])[1 + (i / 100) % 8] END,
       CASE WHEN status = 'dead' THEN
           (ARRAY['git push rejected: non-fast-forward on ',
                  'fatal: unable to access remote (Could not resolve host) for ',
                  'merge conflict in src/module_' || (i % 311) || '.rs while rebasing ',
                  'the op ran past its time limit of 300 s on ',
                  'sandbox_not_found: no sandbox ',
                  'error: pathspec ''docs/page_' || (i % 97) || '.md'' did not match any file in ',
                  'remote: Permission to repository denied for ',
                  'fatal: bad object ' || substr(md5((i * 3)::text), 1, 12) || ' in '])[1 + (i / 100) % 8]
           || 'agent/' || ((sb * 13) % 2000) || '/' || sb
       END,
       CASE WHEN status = 'done' THEN jsonb_build_object('ok', true, 'ms', i % 900) END,
       enq,
       CASE WHEN status IN ('waiting', 'delayed', 'cancelled') THEN NULL
            ELSE enq + ((i * 31) % 2000) * interval '1 millisecond' END,
       CASE WHEN status IN ('done', 'dead') THEN enq + (200 + (i * 17) % 60000) * interval '1 millisecond' END,
       CASE WHEN status = 'delayed' THEN now() + interval '1 minute' END,
       CASE WHEN status IN ('done', 'dead') THEN enq + (200 + (i * 17) % 60000) * interval '1 millisecond' ELSE enq END
  FROM seed_jobs;

-- Runs, with git steps, for every 5th job that started (a second, failed run for retried
-- and dead ones).
INSERT INTO job_runs (run_id, job_id, attempt, worker_id, started_at, finished_at, outcome,
                      error_kind, error_message, retry_at, sandbox_id, git_steps)
SELECT j.job_id || '-' || a, j.job_id, a, j.worker_id,
       j.started_at + (a - 1) * interval '5 seconds',
       COALESCE(j.finished_at, j.started_at) + (a - 1) * interval '5 seconds',
       CASE WHEN a < j.attempts THEN 'retry' WHEN j.status = 'dead' THEN 'dead'
            WHEN j.status = 'running' THEN 'running' ELSE 'done' END,
       CASE WHEN a < j.attempts OR j.status = 'dead' THEN COALESCE(j.error_kind, 'internal') END,
       CASE WHEN a < j.attempts OR j.status = 'dead' THEN COALESCE(j.error_message, 'git exited 128') END,
       NULL, j.sandbox_id,
       CASE WHEN j.status <> 'running' THEN
           jsonb_build_array(
               jsonb_build_object('command', 'ls-remote', 'phase', 'mirror', 'at_ms', 0, 'ms', 40, 'outcome', 'ok'),
               jsonb_build_object('command', 'fetch', 'phase', 'mirror', 'at_ms', 41, 'ms', 300, 'outcome', 'ok'),
               jsonb_build_object('command', 'checkout', 'phase', 'sandbox', 'at_ms', 350, 'ms', 25, 'outcome', 'ok'),
               jsonb_build_object('command', j.op, 'phase', 'op', 'at_ms', 380, 'ms', 120,
                                  'outcome', CASE WHEN j.status = 'dead' THEN 'exit' ELSE 'ok' END))
       END
  FROM jobs j, generate_series(1, 3) AS a
 WHERE j.started_at IS NOT NULL AND a <= j.attempts
   AND (j.status = 'dead' OR j.attempts > 1 OR abs(hashtext(j.job_id)) % 5 = 0);
