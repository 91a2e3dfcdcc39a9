-- Per-repository figures for the dashboard's Repositories view, and how each sandbox was
-- made (its Sandboxes view, the overview's cache hit rate).

-- What each worker did with each repository, per organization: counters that workers add
-- to (deltas, flushed every few seconds through the background writer), the mirror's size
-- and last fetch. One row per (repository, organization, worker); `org_id` NULL for jobs
-- without one and for the worker's own fetches (maintenance), which only admin keys see.
-- The organization is part of the key so that a repository used by two organizations
-- shows each only its own figures: every count is the count of that organization's jobs.
CREATE TABLE repo_stats (
    -- Never with credentials (validated at clone, and redacted again before writing).
    repo_url        TEXT NOT NULL,
    org_id          TEXT,
    worker_id       TEXT NOT NULL,
    -- Sandboxes made, by how: a warm empty sandbox of the pool, a released copy recycled
    -- from the cache, a new directory made from the template (the pool was empty), or cold
    -- (the worker had no mirror of the repository yet and cloned it from the remote).
    made_pool       BIGINT NOT NULL DEFAULT 0,
    made_cache      BIGINT NOT NULL DEFAULT 0,
    made_template   BIGINT NOT NULL DEFAULT 0,
    made_cold       BIGINT NOT NULL DEFAULT 0,
    -- Mirror fetches from the remote (a clone of a new mirror counts as one).
    fetches         BIGINT NOT NULL DEFAULT 0,
    last_fetch_at   TIMESTAMPTZ,
    -- The mirror's bytes on disk, measured after the last fetch (not on every job).
    mirror_bytes    BIGINT,
    pushes          BIGINT NOT NULL DEFAULT 0,
    rebases         BIGINT NOT NULL DEFAULT 0,
    conflicts       BIGINT NOT NULL DEFAULT 0,
    last_used_at    TIMESTAMPTZ NOT NULL,
    -- The worker's flush sequence last added to this row: a flush is applied once (a
    -- replayed or retried one has a sequence not above it and adds nothing).
    flush_seq       BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
-- NULLS NOT DISTINCT: rows without an organization are one row per repository and worker.
CREATE UNIQUE INDEX repo_stats_key_idx ON repo_stats (repo_url, org_id, worker_id) NULLS NOT DISTINCT;
CREATE INDEX repo_stats_org_idx ON repo_stats (org_id, repo_url);

-- How a sandbox was made (`pool`, `cache`, `template`, `cold`; NULL for rows from before).
ALTER TABLE git_sandboxes ADD COLUMN source TEXT
    CHECK (source IN ('pool', 'cache', 'template', 'cold'));
-- The overview's cache hit rate counts the sandboxes made in the last hour and day.
CREATE INDEX git_sandboxes_created_idx ON git_sandboxes (created_at);
