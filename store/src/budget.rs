//! Budgets: sandbox time metered per organization, and the check that refuses an
//! organization's jobs once its monthly budget is spent.
//!
//! Spend is derived, never counted up: this month's `sandbox_usage` (one row per terminated
//! sandbox) plus the time so far of the organization's live sandboxes, at the configured
//! cost per sandbox-hour. Months are calendar months in UTC. No budget means unlimited.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};
use gitfleet_contract::{ErrorKind, JobError};

/// An organization's budget and what it has spent this month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgSpend {
    pub org_id: String,
    /// USD per month; `None`: unlimited.
    pub monthly_budget_usd: Option<f64>,
    pub spend_usd: f64,
    /// Sandboxes of the organization alive now (their time so far is in `spend_usd`).
    pub live_sandboxes: i64,
}

impl OrgSpend {
    pub fn over_budget(&self) -> bool {
        self.monthly_budget_usd.is_some_and(|b| self.spend_usd >= b)
    }
}

/// The error a job of an organization over its budget gets.
pub fn budget_exceeded(org: &str) -> JobError {
    JobError::new(
        ErrorKind::BudgetExceeded,
        format!("organization {org:?} has spent its monthly sandbox budget"),
    )
}

/// Ops that still run for an organization over budget: `release` ends a sandbox, and so
/// its cost.
pub fn exempt_from_budget(op: &str) -> bool {
    op == "release"
}

impl Store {
    /// Every organization with a budget, usage or live sandboxes, by id.
    pub async fn orgs(&self) -> Result<Vec<OrgSpend>, StoreError> {
        Ok(sqlx::query_as!(
            OrgSpend,
            r#"
WITH month AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS start),
used AS (
    SELECT org_id, SUM(cost_usd) AS cost
      FROM sandbox_usage, month WHERE ended_at >= month.start GROUP BY org_id
),
live AS (
    SELECT org_id, COUNT(*) AS n,
           SUM(GREATEST(EXTRACT(EPOCH FROM (now() - GREATEST(created_at, month.start)))::float8, 0))
               / 3600.0 * $1 AS cost
      FROM git_sandboxes, month
     WHERE status <> 'terminated' AND org_id IS NOT NULL GROUP BY org_id
),
names AS (
    SELECT org_id FROM organizations UNION SELECT org_id FROM used UNION SELECT org_id FROM live
)
SELECT names.org_id AS "org_id!", o.monthly_budget_usd AS "monthly_budget_usd?",
       (COALESCE(u.cost, 0) + COALESCE(l.cost, 0))::float8 AS "spend_usd!",
       COALESCE(l.n, 0) AS "live_sandboxes!"
  FROM names
  LEFT JOIN organizations o ON o.org_id = names.org_id
  LEFT JOIN used u ON u.org_id = names.org_id
  LEFT JOIN live l ON l.org_id = names.org_id
 ORDER BY names.org_id
"#,
            self.sandbox_hour_usd
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One organization's spend (zero, unlimited, for one the record has never seen).
    pub async fn org(&self, org_id: &str) -> Result<OrgSpend, StoreError> {
        Ok(self
            .orgs()
            .await?
            .into_iter()
            .find(|o| o.org_id == org_id)
            .unwrap_or(OrgSpend {
                org_id: org_id.to_string(),
                monthly_budget_usd: None,
                spend_usd: 0.0,
                live_sandboxes: 0,
            }))
    }

    /// Sets (or with `None` removes) an organization's monthly budget in USD.
    pub async fn set_budget(&self, org_id: &str, usd: Option<f64>) -> Result<(), StoreError> {
        if usd.is_some_and(|u| !(u.is_finite() && u >= 0.0)) {
            return Err(StoreError::Config(
                "a budget is a number of USD >= 0".into(),
            ));
        }
        sqlx::query!(
            r#"
INSERT INTO organizations (org_id, monthly_budget_usd) VALUES ($1, $2)
ON CONFLICT (org_id) DO UPDATE SET monthly_budget_usd = EXCLUDED.monthly_budget_usd, updated_at = now()
"#,
            org_id,
            usd
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organizations that have spent their budget.
    pub async fn over_budget(&self) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .orgs()
            .await?
            .into_iter()
            .filter(OrgSpend::over_budget)
            .map(|o| o.org_id)
            .collect())
    }

    /// Refuses a job of `org_id` if that organization has spent its budget (the client's
    /// check at enqueue time).
    pub async fn check_budget(&self, org_id: &str, op: &str) -> Result<(), CheckError> {
        if exempt_from_budget(op) {
            return Ok(());
        }
        let org = self.org(org_id).await.map_err(CheckError::Store)?;
        if org.over_budget() {
            return Err(CheckError::Exceeded(budget_exceeded(org_id)));
        }
        Ok(())
    }
}

/// Why [`Store::check_budget`] said no.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Exceeded(JobError),
    #[error(transparent)]
    Store(StoreError),
}

/// The worker's view of which organizations are over budget, refreshed in the background
/// so the job path reads memory, never Postgres. While Postgres is away the last list
/// stands (an organization not on it keeps running).
#[derive(Debug, Clone, Default)]
pub struct Budgets(Arc<RwLock<HashSet<String>>>);

impl Budgets {
    /// The error for a job of `org` running `op`, if its organization is over budget.
    pub fn check(&self, org: Option<&str>, op: &str) -> Result<(), JobError> {
        match org {
            Some(org)
                if !exempt_from_budget(op)
                    && self.0.read().expect("not poisoned").contains(org) =>
            {
                Err(budget_exceeded(org))
            }
            _ => Ok(()),
        }
    }

    /// Re-reads the list now.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let over = store.over_budget().await?;
        *self.0.write().expect("not poisoned") = over;
        Ok(())
    }

    /// Re-reads the list every `every` until `stop`, the first time `every` from now: the
    /// caller reads it once first ([`Budgets::refresh`]) and says whether that failed, so a
    /// Postgres that is away is reported once, and its return too.
    pub async fn keep_fresh(
        self,
        store: Store,
        every: Duration,
        stop: CancellationToken,
        mut failing: bool,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.refresh(&store).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("budgets: postgres is back");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "budgets: cannot read; keeping the last list");
                }
                Err(_) => {}
            }
        }
    }
}
