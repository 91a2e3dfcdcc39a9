-- The dashboard (`/ui` of the gateway): sign-in sessions shared by every gateway replica,
-- and the indexes its live updates and overview read.

-- A browser's session, made by signing in with an API key. The cookie holds a random
-- 256-bit token; this table only its SHA-256, so a leaked row signs nobody in. A session
-- ends at `expires_at`, at sign-out (its row is deleted), or as soon as its key is revoked
-- or expires: it is always read joined to its key.
CREATE TABLE ui_sessions (
    token_sha256 BYTEA PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX ui_sessions_key_idx ON ui_sessions (key_id);
CREATE INDEX ui_sessions_expires_idx ON ui_sessions (expires_at);

-- Live pages: the job rows written since the last look, read once per interval for every
-- open page (`updated_at` is when the record writer wrote the row).
CREATE INDEX jobs_updated_idx ON jobs (updated_at);

-- The overview's sandbox counts: the live ones (few) out of the registry (mostly
-- terminated rows).
CREATE INDEX git_sandboxes_live_idx ON git_sandboxes (org_id, status) WHERE status <> 'terminated';
