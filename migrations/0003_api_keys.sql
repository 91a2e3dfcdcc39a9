-- API keys: how the gateway knows who calls it. A key is `gfk_<id>_<secret>`; `id` is its
-- public lookup prefix, and only the SHA-256 of the 256-bit random secret is kept, so this
-- table cannot be used to call anything (see store/src/keys.rs).
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'producer', 'operator', 'admin')),
    name          TEXT,
    secret_sha256 BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL: never expires.
    expires_at    TIMESTAMPTZ,
    -- Set once by `gitfleet keys revoke`; a revoked key never authenticates again.
    revoked_at    TIMESTAMPTZ,
    -- Written by the gateway in the background, in batches: it may lag the last use a little.
    last_used_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);
