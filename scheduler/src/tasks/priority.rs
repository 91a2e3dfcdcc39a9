//! Priority, every 5 minutes: recomputes the repositories most used across the fleet
//! (sum of their sandboxes' uses over a recent window, from the registry) into
//! `repo_priority`, which eviction reads: their released copies are never evicted.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Outcome;
use crate::config::{ConfigError, Schedule, parse_var};
use crate::{Context, SchedError};

#[derive(Debug, Clone)]
pub struct PriorityConfig {
    /// `GITFLEET_SCHEDULE_PRIORITY`, default `0 */5 * * * *` (every 5 minutes).
    pub schedule: Schedule,
    /// How many repositories are kept whatever their idle time (DESIGN.md: ten).
    pub top_n: i64,
    /// `GITFLEET_PRIORITY_WINDOW_HOURS`, default 168 (a week): uses counted are those of
    /// sandboxes used within this window.
    pub window_hours: i64,
}

impl Default for PriorityConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("0 */5 * * * *"),
            top_n: 10,
            window_hours: 168,
        }
    }
}

impl PriorityConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_PRIORITY", "0 */5 * * * *")?,
            window_hours: parse_var("GITFLEET_PRIORITY_WINDOW_HOURS", d.window_hours)?,
            ..d
        })
    }
}

/// Replaces `repo_priority` with the top repositories by use as of `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let cfg = &ctx.config.priority;
    let since = tick - chrono::Duration::hours(cfg.window_hours);
    let mut tx = ctx.store.pool().begin().await?;
    sqlx::query!("DELETE FROM repo_priority")
        .execute(&mut *tx)
        .await?;
    let top = sqlx::query!(
        r#"
INSERT INTO repo_priority (repo_url, rank, uses, last_used_at, computed_at)
SELECT repo_url, (row_number() OVER (ORDER BY uses DESC, last_used DESC, repo_url))::int,
       uses, last_used, $3
  FROM (SELECT repo_url, SUM(use_count)::bigint AS uses, MAX(last_used_at) AS last_used
          FROM git_sandboxes
         WHERE last_used_at >= $1 AND last_used_at <= $3
         GROUP BY repo_url) AS used
 ORDER BY uses DESC, last_used DESC, repo_url
 LIMIT $2
RETURNING repo_url, rank, uses
"#,
        since,
        cfg.top_n,
        tick,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut top: Vec<_> = top
        .into_iter()
        .map(|r| (r.rank, r.repo_url, r.uses))
        .collect();
    top.sort();
    Ok(Outcome(json!({
        "top": top.into_iter().map(|(rank, repo, uses)| json!({"rank": rank, "repo_url": repo, "uses": uses})).collect::<Vec<_>>(),
    })))
}
