//! Retention, daily: deletes job history (finished jobs, done, dead or cancelled, and their
//! runs) and scheduler runs older than a configurable age. Jobs still waiting or running are
//! never deleted, however old. Deletes go in batches, so no statement holds a large table
//! for long.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Outcome;
use crate::config::{ConfigError, Schedule, parse_var};
use crate::{Context, SchedError};

/// Rows deleted per statement, at most.
const BATCH: i64 = 5_000;

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// `GITFLEET_SCHEDULE_RETENTION`, default `0 30 3 * * *` (daily, 03:30 UTC).
    pub schedule: Schedule,
    /// `GITFLEET_RETENTION_DAYS`, default 30: finished jobs older than this (by their
    /// finish time) go, with their runs; so do scheduler runs older than this.
    pub max_age_days: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("0 30 3 * * *"),
            max_age_days: 30,
        }
    }
}

impl RetentionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_RETENTION", "0 30 3 * * *")?,
            max_age_days: parse_var("GITFLEET_RETENTION_DAYS", d.max_age_days)?,
        })
    }
}

/// One round at `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let cutoff = tick - chrono::Duration::days(ctx.config.retention.max_age_days);
    let (mut jobs, mut runs) = (0i64, 0i64);
    loop {
        let n = sqlx::query!(
            r#"
WITH gone AS (
    DELETE FROM jobs WHERE job_id IN (
        SELECT job_id FROM jobs
         WHERE status IN ('done', 'dead', 'cancelled') AND finished_at < $1
         LIMIT $2)
    RETURNING job_id
), runs AS (
    DELETE FROM job_runs r USING gone WHERE r.job_id = gone.job_id RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS "jobs!", (SELECT count(*) FROM runs) AS "runs!"
"#,
            cutoff,
            BATCH,
        )
        .fetch_one(ctx.store.pool())
        .await?;
        jobs += n.jobs;
        runs += n.runs;
        if n.jobs < BATCH {
            break;
        }
    }
    let scheduler_runs = sqlx::query!("DELETE FROM scheduler_runs WHERE tick < $1", cutoff)
        .execute(ctx.store.pool())
        .await?
        .rows_affected();
    Ok(Outcome(json!({
        "cutoff": cutoff.to_rfc3339(),
        "jobs": jobs,
        "job_runs": runs,
        "scheduler_runs": scheduler_runs,
    })))
}
