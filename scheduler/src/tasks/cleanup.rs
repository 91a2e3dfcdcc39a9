//! Clean-up, every 10 minutes: workers that stopped beating are dead.
//! - Redis: the queue layer's own recovery (`Queue::reap_dead_workers`) gives their held
//!   jobs back to the shared queues and answers the jobs waiting in their own queues
//!   `sandbox_not_found` (their sandboxes are gone with them). The jobs it answered get
//!   their final rows in Postgres here (dead, `sandbox_not_found`), written directly.
//! - Postgres: a worker whose row is `running` with no heartbeat for `stale_after`, and
//!   that Redis does not know as alive either, is marked `dead`; its sandboxes are
//!   terminated in the registry (their sandbox time ends) and its released copies are no
//!   longer pooled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfleet_contract::Redactor;
use gitfleet_store::{JobEvent, Record};
use serde_json::json;

use super::Outcome;
use crate::config::{ConfigError, Schedule, secs_var};
use crate::maintenance::live_workers;
use crate::{Context, SchedError};

#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// `GITFLEET_SCHEDULE_CLEANUP`, default `0 */10 * * * *` (every 10 minutes).
    pub schedule: Schedule,
    /// `GITFLEET_WORKER_STALE_SECS`, default 60: a worker whose row has had no heartbeat
    /// for this long (workers write one every 10 s) is dead, unless Redis still sees it.
    pub stale_after: Duration,
    /// `GITFLEET_DEAD_AFTER_SECS`, default 15: the queue layer's dead-after time, for the
    /// Redis side.
    pub dead_after: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("0 */10 * * * *"),
            stale_after: Duration::from_secs(60),
            dead_after: Duration::from_secs(15),
        }
    }
}

impl CleanupConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_CLEANUP", "0 */10 * * * *")?,
            stale_after: secs_var("GITFLEET_WORKER_STALE_SECS", d.stale_after)?,
            dead_after: secs_var("GITFLEET_DEAD_AFTER_SECS", d.dead_after)?,
        })
    }
}

/// One round at `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let cfg = &ctx.config.cleanup;
    let reaped = ctx.queue.reap_dead_workers(cfg.dead_after).await?;
    // Redis has answered these jobs; nothing else will record them.
    let redactor = Redactor::default();
    for chunk in reaped.jobs.chunks(500) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|j| Record::Job(JobEvent::answered(j, &redactor)))
            .collect();
        ctx.store.apply(&records).await?;
    }
    let cutoff = tick - chrono::Duration::from_std(cfg.stale_after).unwrap_or_default();
    let stale = sqlx::query_scalar!(
        r#"
SELECT worker_id FROM workers
 WHERE state IN ('running', 'stopping') AND last_heartbeat_at < $1
 ORDER BY worker_id
"#,
        cutoff
    )
    .fetch_all(ctx.store.pool())
    .await?;
    let live = live_workers(ctx, cfg.dead_after).await?;
    let dead: Vec<String> = stale.into_iter().filter(|w| !live.contains(w)).collect();
    if !dead.is_empty() {
        let records: Vec<Record> = dead
            .iter()
            .map(|w| Record::WorkerSandboxesTerminated {
                worker_id: w.clone(),
                at: tick,
            })
            .collect();
        // The registry's own write: sandboxes terminated, their time metered.
        ctx.store.apply(&records).await?;
        let mut tx = ctx.store.pool().begin().await?;
        sqlx::query!(
            r#"
UPDATE workers SET state = 'dead', stopped_at = $2
 WHERE worker_id = ANY($1) AND state IN ('running', 'stopping')
"#,
            &dead,
            tick,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            r#"
UPDATE git_sandboxes SET is_pooled = FALSE, last_operation = 'cleanup'
 WHERE worker_id = ANY($1) AND is_pooled
"#,
            &dead,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(Outcome(json!({
        "dead": dead,
        "redis": {
            "workers": reaped.workers,
            "requeued": reaped.requeued,
            "answered_sandbox_not_found": reaped.answered,
        },
    })))
}
