-- gitfleet's durable state: job history, the sandbox registry, workers, organizations with
-- sandbox-hour budgets, and the scheduler's runs. Redis stays the bus; these tables are the
-- record. Every write from a worker is an idempotent upsert (see core/src/store/), so a
-- record replayed after a Postgres outage is harmless.

-- One row per worker process.
CREATE TABLE workers (
    worker_id         TEXT PRIMARY KEY,
    host              TEXT NOT NULL,
    version           TEXT NOT NULL,
    pid               INTEGER,
    queues            TEXT NOT NULL DEFAULT '',
    state             TEXT NOT NULL CHECK (state IN ('running', 'stopping', 'stopped', 'dead')),
    started_at        TIMESTAMPTZ NOT NULL,
    last_heartbeat_at TIMESTAMPTZ NOT NULL,
    stopped_at        TIMESTAMPTZ
);
CREATE INDEX workers_state_heartbeat_idx ON workers (state, last_heartbeat_at);

-- One row per job: where it is now, and how its last run ended.
CREATE TABLE jobs (
    job_id        TEXT PRIMARY KEY,
    op            TEXT NOT NULL,
    queue         TEXT NOT NULL,
    org_id        TEXT,
    agent_id      TEXT,
    task_id       TEXT,
    sandbox_id    TEXT,
    status        TEXT NOT NULL CHECK (status IN ('waiting', 'delayed', 'running', 'done', 'dead')),
    -- Runs started. With `phase` it orders the writes: a write applies only if
    -- (attempts, phase) does not go back, so an old write replayed late changes nothing.
    attempts      INTEGER NOT NULL DEFAULT 0,
    phase         SMALLINT NOT NULL DEFAULT 0,
    max_attempts  INTEGER,
    worker_id     TEXT,
    error_kind    TEXT,
    error_message TEXT,
    result        JSONB,
    enqueued_at   TIMESTAMPTZ,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    retry_at      TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_status_idx ON jobs (status, enqueued_at DESC);
CREATE INDEX jobs_op_idx ON jobs (op, enqueued_at DESC);
CREATE INDEX jobs_org_idx ON jobs (org_id, enqueued_at DESC);
CREATE INDEX jobs_enqueued_idx ON jobs (enqueued_at DESC);
CREATE INDEX jobs_finished_idx ON jobs (finished_at);

-- One row per run of a job (its attempts), for `gitfleet job <id>`.
CREATE TABLE job_runs (
    run_id        TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT NOT NULL CHECK (outcome IN ('running', 'done', 'retry', 'dead')),
    error_kind    TEXT,
    error_message TEXT,
    retry_at      TIMESTAMPTZ
);
CREATE INDEX job_runs_job_idx ON job_runs (job_id, started_at);

-- The sandbox registry.
CREATE TABLE git_sandboxes (
    id             BIGSERIAL PRIMARY KEY,
    sandbox_id     TEXT NOT NULL UNIQUE,
    worker_id      TEXT NOT NULL,
    org_id         TEXT,
    agent_id       TEXT,
    task_id        TEXT,
    -- Never with credentials (validated at clone, and redacted again before writing).
    repo_url       TEXT NOT NULL,
    branch         TEXT NOT NULL,
    agent_branch   TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('initializing', 'ready', 'in_use', 'error', 'terminated')),
    last_operation TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    terminated_at  TIMESTAMPTZ,
    use_count      INTEGER NOT NULL DEFAULT 0,
    error_count    INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    config         JSONB NOT NULL DEFAULT '{}',
    -- The working copy went back to the worker's cache of released copies.
    is_pooled      BOOLEAN NOT NULL DEFAULT FALSE,
    ttl_tier       TEXT CHECK (ttl_tier IN ('top', 'hot', 'warm', 'cold')),
    expires_at     TIMESTAMPTZ,
    -- Time of the last event applied (events carry their own time; older ones are ignored).
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX git_sandboxes_agent_idx ON git_sandboxes (agent_id);
CREATE INDEX git_sandboxes_task_idx ON git_sandboxes (task_id);
CREATE INDEX git_sandboxes_agent_branch_idx ON git_sandboxes (agent_branch);
CREATE INDEX git_sandboxes_worker_status_idx ON git_sandboxes (worker_id, status);
CREATE INDEX git_sandboxes_org_status_idx ON git_sandboxes (org_id, status);

-- Organizations and their monthly sandbox budget (NULL: unlimited).
CREATE TABLE organizations (
    org_id             TEXT PRIMARY KEY,
    monthly_budget_usd DOUBLE PRECISION CHECK (monthly_budget_usd >= 0),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Sandbox time, one row per terminated sandbox of an organization. An organization's spend
-- is derived from it (plus its live sandboxes), never counted up, so replays cannot
-- double it.
CREATE TABLE sandbox_usage (
    sandbox_id TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ NOT NULL,
    seconds    DOUBLE PRECISION NOT NULL,
    cost_usd   DOUBLE PRECISION NOT NULL
);
CREATE INDEX sandbox_usage_org_idx ON sandbox_usage (org_id, ended_at);

-- The scheduler's runs: one row per task per tick (a tick fires once, on the leader).
CREATE TABLE scheduler_runs (
    id          BIGSERIAL PRIMARY KEY,
    task        TEXT NOT NULL,
    tick        TIMESTAMPTZ NOT NULL,
    replica     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT NOT NULL,
    UNIQUE (task, tick)
);
CREATE INDEX scheduler_runs_started_idx ON scheduler_runs (started_at DESC);
