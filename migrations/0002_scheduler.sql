-- The scheduler's state (see scheduler/).

-- The ten most used repositories, recomputed by the priority task every 5 minutes and read
-- by eviction: their released copies are never evicted.
CREATE TABLE repo_priority (
    repo_url     TEXT PRIMARY KEY,
    rank         INTEGER NOT NULL,
    uses         BIGINT NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    computed_at  TIMESTAMPTZ NOT NULL
);

-- Eviction reads the released copies kept on workers, and each repository's last use.
CREATE INDEX git_sandboxes_pooled_idx ON git_sandboxes (worker_id) WHERE is_pooled;
CREATE INDEX git_sandboxes_repo_used_idx ON git_sandboxes (repo_url, last_used_at DESC);
-- Retention deletes finished history by age.
CREATE INDEX scheduler_runs_tick_idx ON scheduler_runs (tick);
