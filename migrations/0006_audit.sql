-- The audit log, deleted jobs, and the history's search.

-- Every action taken through the API (and the dashboard, which uses the same routes): who
-- (the key's id, name and role, never its secret), what, when, on which jobs, from which
-- surface, and how it ended. Written by the gateway's background writer; `id` is a ULID made
-- when the action ended, so a row replayed from a spool is inserted once.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    -- The organization acted on (a job's, a filter's, a key's or sandbox's); NULL: every
    -- organization (an admin's bulk action without an organization filter).
    org_id      TEXT,
    key_id      TEXT NOT NULL,
    key_name    TEXT,
    key_org     TEXT NOT NULL,
    key_role    TEXT NOT NULL,
    surface     TEXT NOT NULL CHECK (surface IN ('api', 'ui')),
    -- `job.retry`, `job.cancel`, `job.delete`, `job.run_now`, `jobs.retry`, `jobs.delete`,
    -- `jobs.run_now`, `sandbox.release`, `key.create`, `key.revoke`.
    action      TEXT NOT NULL,
    -- What it acted on besides jobs: a sandbox id, a key id.
    target      TEXT,
    -- The jobs acted on (for a bulk action the first 1,000; `affected` counts them all).
    job_ids     TEXT[] NOT NULL DEFAULT '{}',
    -- A bulk action's filter, as sent.
    filter      JSONB,
    matched     BIGINT,
    affected    BIGINT,
    -- `ok`, or the problem's kind (`conflict`, `not_found`, `auth`, `invalid_input`, ...).
    outcome     TEXT NOT NULL,
    detail      TEXT
);
-- Newest first, for one organization and for all (an admin's view).
CREATE INDEX audit_log_org_at_idx ON audit_log (org_id, at DESC, id DESC);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);

-- A dead or delayed job deleted by hand (`POST /v1/jobs/{id}/delete`, or in bulk): gone from
-- Redis; its row stays, marked.
ALTER TABLE jobs ADD COLUMN deleted_at TIMESTAMPTZ;

-- Search: text in the error message (`GET /v1/jobs?q=`), a trigram index so `ILIKE
-- '%text%'` is an index scan, not a read of the whole history. pg_trgm ships with
-- PostgreSQL (Debian's postgresql package includes it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
-- Not partial: the planner does not infer `error_message IS NOT NULL` from an `ILIKE` on it,
-- so a partial index would never be used for the search.
CREATE INDEX jobs_error_trgm_idx ON jobs USING gin (error_message gin_trgm_ops);
-- By job id prefix (`?id=01K4`): `text_pattern_ops` serves `LIKE 'prefix%'` whatever the
-- database's collation.
CREATE INDEX jobs_id_prefix_idx ON jobs (job_id text_pattern_ops);
-- Sorting by finish time, newest or oldest first, with the cursor's tie-break.
CREATE INDEX jobs_finished_id_idx ON jobs (finished_at, job_id);
