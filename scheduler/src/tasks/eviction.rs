//! Eviction, every minute: applies DESIGN.md's TTL tiers to the released copies workers
//! keep, as the registry sees them (`git_sandboxes` rows `terminated` with `is_pooled`).
//! A copy's tier comes from its repository's last use anywhere in the fleet:
//! - among the top repositories (`repo_priority`, the priority task): never evicted;
//! - used in the last 10 minutes: kept 2 hours after its release;
//! - used 10 to 60 minutes ago: kept 30 minutes after its release;
//! - unused for over an hour: evicted at once.
//!
//! Kept copies get their tier and expiry written; expired ones are evicted by the worker
//! holding them (a `maintain` `evict` job on its queue) and, once it answers, are no longer
//! `is_pooled` in the registry. A copy the worker no longer has (recycled by a clone
//! meanwhile) counts as gone too. Copies on workers that are not alive are left to the
//! clean-up task.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
/// DESIGN.md's TTL tiers (`git_sandboxes.ttl_tier`), as a worker's own cache names them.
pub use gitfleet_core::sandbox::cache::Tier;
use serde_json::json;

use super::Outcome;
use crate::config::{ConfigError, Schedule, secs_var};
use crate::maintenance::{send_and_wait, serving_workers, summary};
use crate::{Context, SchedError};

#[derive(Debug, Clone)]
pub struct EvictionConfig {
    /// `GITFLEET_SCHEDULE_EVICTION`, default `0 * * * * *` (every minute).
    pub schedule: Schedule,
    /// A repository used within this is hot (default 10 minutes).
    pub hot_within: Duration,
    /// A repository used within this (and not hot) is warm (default 60 minutes); beyond,
    /// cold.
    pub warm_within: Duration,
    /// How long a hot repository's copy is kept after its release (default 2 hours).
    pub hot_keep: Duration,
    /// How long a warm repository's copy is kept after its release (default 30 minutes).
    pub warm_keep: Duration,
    /// `GITFLEET_DEAD_AFTER_SECS`, default 15: a worker silent this long in Redis is not
    /// sent jobs (the queue layer's own dead-after time).
    pub dead_after: Duration,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        Self {
            schedule: Schedule::fixed("0 * * * * *"),
            hot_within: Duration::from_secs(10 * 60),
            warm_within: Duration::from_secs(60 * 60),
            hot_keep: Duration::from_secs(2 * 3600),
            warm_keep: Duration::from_secs(30 * 60),
            dead_after: Duration::from_secs(15),
        }
    }
}

impl EvictionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            schedule: Schedule::from_env("GITFLEET_SCHEDULE_EVICTION", "0 * * * * *")?,
            dead_after: secs_var("GITFLEET_DEAD_AFTER_SECS", d.dead_after)?,
            ..d
        })
    }

    /// The tier of a copy whose repository was last used at `repo_used` (`top`: among
    /// the top repositories), at `now`.
    pub fn tier(&self, now: DateTime<Utc>, repo_used: DateTime<Utc>, top: bool) -> Tier {
        if top {
            return Tier::Top;
        }
        let idle = (now - repo_used).to_std().unwrap_or(Duration::ZERO);
        if idle < self.hot_within {
            Tier::Hot
        } else if idle < self.warm_within {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    /// When a copy of `tier` released at `released` expires (`None`: never).
    pub fn expires(&self, tier: Tier, released: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let keep = match tier {
            Tier::Top => return None,
            Tier::Hot => self.hot_keep,
            Tier::Warm => self.warm_keep,
            Tier::Cold => Duration::ZERO,
        };
        Some(released + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX))
    }
}

struct Copy {
    sandbox_id: String,
    worker_id: String,
    tier: Tier,
    expires_at: Option<DateTime<Utc>>,
}

/// One round at `tick`.
pub async fn run_once(ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
    let cfg = &ctx.config.eviction;
    let rows = sqlx::query!(
        r#"
SELECT s.sandbox_id, s.worker_id,
       COALESCE(s.terminated_at, s.last_used_at) AS "released_at!",
       u.last_used AS "repo_used!",
       (p.repo_url IS NOT NULL) AS "top!"
  FROM git_sandboxes s
  JOIN (SELECT repo_url, MAX(last_used_at) AS last_used
          FROM git_sandboxes GROUP BY repo_url) u ON u.repo_url = s.repo_url
  LEFT JOIN repo_priority p ON p.repo_url = s.repo_url
 WHERE s.is_pooled AND s.status = 'terminated'
"#
    )
    .fetch_all(ctx.store.pool())
    .await?;
    let copies: Vec<Copy> = rows
        .into_iter()
        .map(|r| {
            let tier = cfg.tier(tick, r.repo_used, r.top);
            Copy {
                expires_at: cfg.expires(tier, r.released_at),
                sandbox_id: r.sandbox_id,
                worker_id: r.worker_id,
                tier,
            }
        })
        .collect();
    let (expired, kept): (Vec<&Copy>, Vec<&Copy>) = copies
        .iter()
        .partition(|c| c.expires_at.is_some_and(|at| at <= tick));
    set_tiers(ctx, &kept, true).await?;

    // A draining or drained worker takes no `maintain` job: its copies wait (unreachable).
    let live = serving_workers(ctx, cfg.dead_after).await?;
    let mut by_worker: BTreeMap<&str, Vec<&Copy>> = BTreeMap::new();
    let mut unreachable = 0;
    for c in &expired {
        if live.iter().any(|w| w == &c.worker_id) {
            by_worker.entry(&c.worker_id).or_default().push(c);
        } else {
            unreachable += 1;
        }
    }
    let jobs = by_worker
        .iter()
        .map(|(worker, copies)| {
            let ids: Vec<&str> = copies.iter().map(|c| c.sandbox_id.as_str()).collect();
            (
                worker.to_string(),
                json!({"task": "evict", "worker_id": worker, "sandbox_ids": ids}),
            )
        })
        .collect();
    let answers = send_and_wait(ctx, "eviction", tick, jobs, ctx.config.maintenance_wait).await?;
    let mut gone: Vec<&Copy> = Vec::new();
    for a in &answers {
        if a.result.is_ok() {
            gone.extend(by_worker.get(a.worker.as_str()).into_iter().flatten());
        }
    }
    set_tiers(ctx, &gone, false).await?;
    let count = |t: Tier| kept.iter().filter(|c| c.tier == t).count();
    Ok(Outcome(json!({
        "kept": {"top": count(Tier::Top), "hot": count(Tier::Hot), "warm": count(Tier::Warm), "cold": count(Tier::Cold)},
        "expired": expired.len(),
        "evicted": gone.len(),
        "unreachable": unreachable,
        "workers": summary(&answers),
    })))
}

/// Writes each copy's tier and expiry; `pooled: false` also records that it is gone.
async fn set_tiers(ctx: &Context, copies: &[&Copy], pooled: bool) -> Result<(), SchedError> {
    if copies.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = copies.iter().map(|c| c.sandbox_id.clone()).collect();
    let tiers: Vec<String> = copies.iter().map(|c| c.tier.as_str().to_string()).collect();
    let expiries: Vec<Option<DateTime<Utc>>> = copies.iter().map(|c| c.expires_at).collect();
    sqlx::query!(
        r#"
UPDATE git_sandboxes g
   SET ttl_tier = t.tier, expires_at = t.expires_at, is_pooled = $4,
       last_operation = CASE WHEN $4 THEN g.last_operation ELSE 'evict' END
  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(sandbox_id, tier, expires_at)
 WHERE g.sandbox_id = t.sandbox_id AND g.is_pooled
"#,
        &ids,
        &tiers,
        &expiries as &[Option<DateTime<Utc>>],
        pooled,
    )
    .execute(ctx.store.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_keeps_a_copy_for_its_time_after_release() {
        let cfg = EvictionConfig::default();
        let now = Utc::now();
        let min = chrono::Duration::minutes(1);
        assert_eq!(cfg.tier(now, now - min * 100_000, true), Tier::Top);
        assert_eq!(cfg.tier(now, now - min * 9, false), Tier::Hot);
        assert_eq!(cfg.tier(now, now - min * 10, false), Tier::Warm);
        assert_eq!(cfg.tier(now, now - min * 59, false), Tier::Warm);
        assert_eq!(cfg.tier(now, now - min * 60, false), Tier::Cold);
        let released = now - min * 5;
        assert_eq!(cfg.expires(Tier::Top, released), None);
        assert_eq!(cfg.expires(Tier::Hot, released), Some(released + min * 120));
        assert_eq!(cfg.expires(Tier::Warm, released), Some(released + min * 30));
        assert_eq!(cfg.expires(Tier::Cold, released), Some(released));
    }
}
