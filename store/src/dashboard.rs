//! What the gateway's dashboard (`/ui`) reads and keeps: sign-in sessions (hashed, shared
//! by every replica), the job rows written since its last look (its live pages), and the
//! overview's figures from the history (throughput, failures, pickup latency, sandboxes).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use super::{Store, StoreError};
use crate::history::{JobRow, SandboxRow};
use crate::keys::ApiKey;

/// A new random token: 256 bits from the operating system, as unpadded base64url (43
/// characters). A session's, or the sign-in form's.
pub fn random_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` has the shape [`random_token`] gives (checked before it is looked up).
pub fn is_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The hash a session's token is kept by.
pub fn session_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A job row as the live feed reads it: the row, and when the record writer wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobChange {
    pub row: JobRow,
    pub updated_at: DateTime<Utc>,
}

/// Finished jobs in one minute: done and dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// Minutes since the epoch.
    pub minute: i64,
    pub done: i64,
    pub dead: i64,
}

/// How long jobs waited for a worker: from enqueue to the start of their first run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickupLatency {
    /// Jobs measured.
    pub jobs: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// Sandboxes as the registry has them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxCounts {
    /// Live (not terminated) sandboxes.
    pub live: i64,
    /// Of those, running an op right now.
    pub in_use: i64,
    /// Released working copies kept on workers for the next clone of their repository.
    pub pooled: i64,
}

struct SessionRow {
    id: String,
    org_id: String,
    role: String,
    name: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl Store {
    /// A new session for key `key_id`, lasting `ttl` (by Postgres's clock) but never past the
    /// key's own expiry: its token, for the cookie. Only the token's hash is kept. Sessions
    /// past their expiry are deleted on the way.
    pub async fn create_session(
        &self,
        key_id: &str,
        ttl: std::time::Duration,
    ) -> Result<String, StoreError> {
        let token = random_token()?;
        let hash = session_hash(&token);
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query!("DELETE FROM ui_sessions WHERE expires_at < now()")
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            r#"
INSERT INTO ui_sessions (token_sha256, key_id, expires_at)
SELECT $1, k.id, LEAST(now() + $3::bigint * interval '1 microsecond', k.expires_at)
  FROM api_keys k WHERE k.id = $2
"#,
            &hash[..],
            key_id,
            ttl_us,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The key of the session whose token is `token`, if the session has not expired and
    /// its key is still good (not revoked, not expired); `None` otherwise.
    pub async fn session_key(&self, token: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = session_hash(token);
        let row = sqlx::query_as!(
            SessionRow,
            r#"
SELECT k.id, k.org_id, k.role, k.name, k.created_at, k.expires_at, k.revoked_at, k.last_used_at
  FROM ui_sessions s JOIN api_keys k ON k.id = s.key_id
 WHERE s.token_sha256 = $1 AND s.expires_at > now()
   AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
"#,
            &hash[..]
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let role = r
            .role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(format!("api_keys.role: {e}").into()))?;
        Ok(Some(ApiKey {
            id: r.id,
            org: r.org_id,
            role,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }))
    }

    /// Ends the session whose token is `token` (sign-out); nothing if there is none.
    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        let hash = session_hash(token);
        sqlx::query!("DELETE FROM ui_sessions WHERE token_sha256 = $1", &hash[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live sandboxes (`git_sandboxes_live_idx`, a partial index of the few not
    /// terminated) and those of `ids` whatever their state (the unique index), most recently
    /// used first, `limit` at most: the dashboard's live Sandboxes page reads the ones live
    /// at its last look again, to see them change and end. One query however many pages
    /// listen.
    pub async fn sandboxes_live_or(
        &self,
        ids: &[String],
        limit: i64,
    ) -> Result<Vec<SandboxRow>, StoreError> {
        Ok(sqlx::query_as::<_, SandboxRow>(
            r#"
SELECT sandbox_id, worker_id, status, org_id, agent_id, task_id, repo_url, branch, agent_branch,
       last_operation, use_count, error_count, last_error, is_pooled, source, ttl_tier, expires_at,
       (CASE WHEN expires_at IS NOT NULL
             THEN GREATEST(0, EXTRACT(EPOCH FROM (expires_at - now()))) END)::float8
           AS time_left_secs,
       EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age_secs,
       created_at, last_used_at, terminated_at
  FROM git_sandboxes
 WHERE status <> 'terminated' OR sandbox_id = ANY($1)
 ORDER BY last_used_at DESC, sandbox_id
 LIMIT $2
"#,
        )
        .bind(ids)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Job rows written after (`since`, `after_id`) in the order (write time, job id),
    /// oldest write first, `limit` at most: the live feed (`jobs_updated_idx`). A batch
    /// of rows shares one write time, so a page that ends inside it goes on from its last id.
    pub async fn jobs_changed_since(
        &self,
        since: DateTime<Utc>,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<JobChange>, StoreError> {
        let rows = sqlx::query!(
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at,
       deleted_at, updated_at
  FROM jobs
 WHERE updated_at >= $1 AND (updated_at, job_id) > ($1, $2)
 ORDER BY updated_at, job_id
 LIMIT $3
"#,
            since,
            after_id,
            limit.max(0)
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| JobChange {
                updated_at: r.updated_at,
                row: JobRow {
                    job_id: r.job_id,
                    op: r.op,
                    queue: r.queue,
                    status: r.status,
                    attempts: r.attempts,
                    max_attempts: r.max_attempts,
                    org_id: r.org_id,
                    agent_id: r.agent_id,
                    task_id: r.task_id,
                    sandbox_id: r.sandbox_id,
                    worker_id: r.worker_id,
                    error_kind: r.error_kind,
                    error_message: r.error_message,
                    result: r.result,
                    enqueued_at: r.enqueued_at,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    retry_at: r.retry_at,
                    deleted_at: r.deleted_at,
                },
            })
            .collect())
    }

    /// Jobs that finished (done or dead) since `since`, per minute, of `org` or of every
    /// organization: an index-only scan of `jobs_finished_state_idx` (0009). The minute is
    /// computed in `float8` (`date_part`): `EXTRACT` answers `numeric`, whose arithmetic was
    /// most of the query's time over a day of a busy fleet's jobs.
    pub async fn finished_per_minute(
        &self,
        since: DateTime<Utc>,
        org: Option<&str>,
    ) -> Result<Vec<MinuteCount>, StoreError> {
        let rows = sqlx::query!(
            r#"
SELECT (floor(date_part('epoch', finished_at) / 60))::bigint AS "minute!",
       count(*) FILTER (WHERE status = 'done') AS "done!",
       count(*) FILTER (WHERE status = 'dead') AS "dead!"
  FROM jobs
 WHERE finished_at >= $1 AND status IN ('done', 'dead')
   AND ($2::text IS NULL OR org_id = $2)
 GROUP BY 1
 ORDER BY 1
"#,
            since,
            org
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MinuteCount {
                minute: r.minute,
                done: r.done,
                dead: r.dead,
            })
            .collect())
    }

    /// Pickup latency of the jobs enqueued since `since` that have started their first run
    /// (and no other yet), of `org` or of every organization (`jobs_enqueued_idx`).
    pub async fn pickup_latency(
        &self,
        since: DateTime<Utc>,
        org: Option<&str>,
    ) -> Result<PickupLatency, StoreError> {
        let r = sqlx::query!(
            r#"
SELECT count(*) AS "jobs!",
       (percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - enqueued_at)) * 1000)::float8 AS p50,
       (percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - enqueued_at)) * 1000)::float8 AS p95
  FROM jobs
 WHERE enqueued_at >= $1 AND attempts = 1 AND started_at IS NOT NULL
   AND ($2::text IS NULL OR org_id = $2)
"#,
            since,
            org
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PickupLatency {
            jobs: r.jobs,
            p50_ms: r.p50,
            p95_ms: r.p95,
        })
    }

    /// The registry's live and pooled sandboxes, of `org` or of every organization
    /// (`git_sandboxes_live_idx`, `git_sandboxes_pooled_idx`).
    pub async fn sandbox_counts(&self, org: Option<&str>) -> Result<SandboxCounts, StoreError> {
        let r = sqlx::query!(
            r#"
SELECT (SELECT count(*) FROM git_sandboxes
         WHERE status <> 'terminated' AND ($1::text IS NULL OR org_id = $1)) AS "live!",
       (SELECT count(*) FROM git_sandboxes
         WHERE status = 'in_use' AND ($1::text IS NULL OR org_id = $1)) AS "in_use!",
       (SELECT count(*) FROM git_sandboxes
         WHERE is_pooled AND ($1::text IS NULL OR org_id = $1)) AS "pooled!"
"#,
            org
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(SandboxCounts {
            live: r.live,
            in_use: r.in_use,
            pooled: r.pooled,
        })
    }
}
