//! Health check, every 5 minutes: each live worker checks its sandboxes and released copies
//! (a `maintain` `health_check` job: git must still read each working tree). A broken one
//! is removed by its worker, which then refills its pool; here its row is terminated and
//! records the error (and its organization's sandbox time ends, as at a release).

use chrono::{DateTime, Utc};
use gitfleet_store::record_sandbox_usage;
use serde_json::{Value, json};

use super::Outcome;
use crate::config::{ConfigError, Schedule};
use crate::maintenance::{send_and_wait, serving_workers, summary};
use crate::{Context, SchedError};

#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    /// `GITFLEET_SCHEDULE_HEALTH_CHECK`, default `30 */5 * * * *` (every 5 minutes, half a
    /// minute after the priority task).
    pub schedule: Schedule,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("30 */5 * * * *"),
        }
    }
}

impl HealthCheckConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_HEALTH_CHECK", "30 */5 * * * *")?,
        })
    }
}

/// One round at `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let workers = serving_workers(ctx, ctx.config.eviction.dead_after).await?;
    let jobs = workers
        .iter()
        .map(|w| (w.clone(), json!({"task": "health_check", "worker_id": w})))
        .collect();
    let answers =
        send_and_wait(ctx, "health_check", tick, jobs, ctx.config.maintenance_wait).await?;
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for a in &answers {
        let Ok(result) = &a.result else { continue };
        for b in result["broken"].as_array().into_iter().flatten() {
            if let Some(id) = b["sandbox_id"].as_str().filter(|id| !id.is_empty()) {
                ids.push(id.to_string());
                errors.push(format!(
                    "health check: {}",
                    b["error"].as_str().unwrap_or("broken")
                ));
            }
        }
    }
    if !ids.is_empty() {
        let mut tx = ctx.store.pool().begin().await?;
        let terminated = sqlx::query_scalar!(
            r#"
UPDATE git_sandboxes g
   SET status = 'terminated', terminated_at = COALESCE(g.terminated_at, clock_timestamp()),
       is_pooled = FALSE, error_count = g.error_count + 1, last_error = t.error,
       last_operation = 'health_check', updated_at = GREATEST(g.updated_at, $3)
  FROM unnest($1::text[], $2::text[]) AS t(sandbox_id, error)
 WHERE g.sandbox_id = t.sandbox_id
RETURNING g.sandbox_id
"#,
            &ids,
            &errors,
            tick,
        )
        .fetch_all(&mut *tx)
        .await?;
        record_sandbox_usage(&mut tx, &terminated, ctx.store.sandbox_hour_usd()).await?;
        tx.commit().await?;
    }
    Ok(Outcome(json!({
        "workers": workers.len(),
        "broken": ids.iter().map(|s| Value::String(s.clone())).collect::<Vec<_>>(),
        "answers": summary(&answers),
    })))
}
