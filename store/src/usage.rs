//! Sandbox usage: what a terminated sandbox cost its organization, one `sandbox_usage` row
//! per sandbox (its time from creation to termination, in sandbox-hours at the configured
//! price). Whatever terminates sandboxes (a release, a stopping worker, the scheduler's
//! health check) records their usage through [`record_sandbox_usage`], so it is priced alike.
//! Both ends of a sandbox's metered time are Postgres's clock (`clock_timestamp()` when its
//! row is made and when it is terminated), never a worker's or the scheduler's: a machine
//! whose clock is off cannot shorten or lengthen what an organization is charged. (A record
//! replayed from a worker's spool after an outage is timed when it reaches Postgres: the
//! outage is charged, never hidden.)

use sqlx::PgConnection;

use crate::StoreError;

/// Inserts the usage of those of `sandbox_ids` that are terminated and belong to an
/// organization: `terminated_at - created_at`, priced at `sandbox_hour_usd` an hour. Run it
/// in the transaction that terminated them, after the update. A sandbox that has a row
/// already keeps it, so a replayed record or a second termination counts nothing twice.
pub async fn record_sandbox_usage(
    conn: &mut PgConnection,
    sandbox_ids: &[String],
    sandbox_hour_usd: f64,
) -> Result<(), StoreError> {
    if sandbox_ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"
INSERT INTO sandbox_usage (sandbox_id, org_id, worker_id, started_at, ended_at, seconds, cost_usd)
SELECT sandbox_id, org_id, worker_id, created_at, terminated_at,
       GREATEST(EXTRACT(EPOCH FROM (terminated_at - created_at))::float8, 0),
       GREATEST(EXTRACT(EPOCH FROM (terminated_at - created_at))::float8, 0) / 3600.0 * $2
  FROM git_sandboxes
 WHERE sandbox_id = ANY($1) AND status = 'terminated' AND org_id IS NOT NULL
ON CONFLICT (sandbox_id) DO NOTHING
"#,
        sandbox_ids,
        sandbox_hour_usd,
    )
    .execute(conn)
    .await?;
    Ok(())
}
