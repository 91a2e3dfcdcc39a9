//! Template rebuild, weekly (Sunday 02:00 UTC): every live worker refreshes its mirrors and
//! rebuilds its sandbox template (a `maintain` `rebuild_template` job). New sandboxes are
//! made from the new template; sandboxes in use are not disturbed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Outcome;
use crate::config::{ConfigError, Schedule, secs_var};
use crate::maintenance::{send_and_wait, serving_workers, summary};
use crate::{Context, SchedError};

#[derive(Debug, Clone)]
pub struct TemplateConfig {
    /// `GITFLEET_SCHEDULE_TEMPLATE_REBUILD`, default `0 0 2 * * SUN` (Sundays 02:00 UTC).
    pub schedule: Schedule,
    /// `GITFLEET_TEMPLATE_WAIT_SECS`, default 1800: how long to wait for the workers (a
    /// rebuild fetches every mirror).
    pub wait: Duration,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("0 0 2 * * SUN"),
            wait: Duration::from_secs(1800),
        }
    }
}

impl TemplateConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_TEMPLATE_REBUILD", "0 0 2 * * SUN")?,
            wait: secs_var("GITFLEET_TEMPLATE_WAIT_SECS", d.wait)?,
        })
    }
}

/// One round at `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let workers = serving_workers(ctx, ctx.config.eviction.dead_after).await?;
    let jobs = workers
        .iter()
        .map(|w| {
            (
                w.clone(),
                json!({"task": "rebuild_template", "worker_id": w}),
            )
        })
        .collect();
    let answers = send_and_wait(
        ctx,
        "template_rebuild",
        tick,
        jobs,
        ctx.config.template.wait,
    )
    .await?;
    let rebuilt = answers.iter().filter(|a| a.result.is_ok()).count();
    Ok(Outcome(json!({
        "workers": workers.len(),
        "rebuilt": rebuilt,
        "answers": summary(&answers),
    })))
}
