//! The audit log: one row per action taken through the API (retry, cancel, delete, run now,
//! the bulk actions, releasing a sandbox, making and revoking keys). Entries are
//! [`Record::Audit`](crate::Record) records, written by the background writer like every
//! other record (so an entry made while Postgres is away waits in memory or the spool), and
//! read back newest first, a page at a time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use super::{Store, StoreError};
use crate::history::{JobCursor, JobSort};
use gitfleet_contract::rfc3339_micros;

/// Job ids kept in one entry at most; a bulk action over more keeps the first ones and its
/// `affected` count.
pub const AUDIT_MAX_JOB_IDS: usize = 1000;

/// One action as the log keeps it. Made by the gateway; never holds a key's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AuditEntry {
    /// A ULID made when the action ended: the entry's key, so a replay inserts it once.
    pub id: String,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub at: Option<DateTime<Utc>>,
    /// The organization acted on; `None`: every organization (an admin's bulk action with
    /// no organization filter).
    pub org_id: Option<String>,
    /// Who: the key's public id, its name and role, and its own organization.
    pub key_id: String,
    pub key_name: Option<String>,
    pub key_org: String,
    pub key_role: String,
    /// `api`, or `ui` (the dashboard): as the caller says.
    pub surface: String,
    /// `job.retry`, `job.cancel`, `job.delete`, `job.run_now`, `jobs.retry`,
    /// `jobs.delete`, `jobs.run_now`, `sandbox.release`, `key.create`, `key.revoke`,
    /// `worker.drain`, `worker.undrain`, `schedule.run`.
    pub action: String,
    /// What it acted on besides jobs: a sandbox's id, a key's id.
    pub target: Option<String>,
    /// The jobs acted on (a bulk action's first [`AUDIT_MAX_JOB_IDS`]).
    pub job_ids: Vec<String>,
    /// A bulk action's filter, as sent.
    pub filter: Option<Value>,
    /// A bulk action's matched count (at its scan) and how many it acted on.
    pub matched: Option<i64>,
    pub affected: Option<i64>,
    /// `ok`, or the kind of the problem it was refused with (`conflict`, `not_found`, ...).
    pub outcome: String,
    pub detail: Option<String>,
}

/// Which entries to list, newest first. Each field set narrows the list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries on this organization's things (a non-admin's listing is always its own).
    pub org: Option<String>,
    pub action: Option<String>,
    pub key_id: Option<String>,
    /// Entries that name this job.
    pub job_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries after this one (the `next` of the previous page).
    pub before: Option<JobCursor>,
    pub limit: i64,
}

/// A page of the log and the cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<JobCursor>,
}

/// Writes an entry; a second write of the same entry (a replay) changes nothing.
pub(crate) async fn apply_audit(
    tx: &mut Transaction<'static, Postgres>,
    e: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"
INSERT INTO audit_log (id, at, org_id, key_id, key_name, key_org, key_role, surface, action,
                       target, job_ids, filter, matched, affected, outcome, detail)
VALUES ($1, COALESCE($2, clock_timestamp()), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
        $14, $15, $16)
ON CONFLICT (id) DO NOTHING
"#,
        e.id,
        e.at,
        e.org_id,
        e.key_id,
        e.key_name,
        e.key_org,
        e.key_role,
        e.surface,
        e.action,
        e.target,
        &e.job_ids,
        e.filter,
        e.matched,
        e.affected,
        e.outcome,
        e.detail,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Entries matching `filter`, newest first (ties by id), `filter.limit` at most, and
    /// the cursor of the next page when more match. Served by the `(org_id, at DESC, id
    /// DESC)` index for one organization and `(at DESC, id DESC)` for all.
    pub async fn audit_page(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let limit = filter.limit.max(0);
        let (before_at, before_id) = match &filter.before {
            Some(c) => (c.at, Some(c.job_id.as_str())),
            None => (None, None),
        };
        let mut entries = sqlx::query_as!(
            AuditEntry,
            r#"
SELECT id, at AS "at?", org_id, key_id, key_name, key_org, key_role, surface, action, target,
       job_ids, filter, matched, affected, outcome, detail
  FROM audit_log
 WHERE ($1::text IS NULL OR org_id = $1)
   AND ($2::text IS NULL OR action = $2)
   AND ($3::text IS NULL OR key_id = $3)
   AND ($4::text IS NULL OR $4 = ANY (job_ids))
   AND ($5::timestamptz IS NULL OR at >= $5)
   AND ($6::timestamptz IS NULL OR at < $6)
   AND ($8::text IS NULL OR (at, id) < ($7::timestamptz, $8))
 ORDER BY at DESC, id DESC
 LIMIT $9
"#,
            filter.org,
            filter.action,
            filter.key_id,
            filter.job_id,
            filter.since,
            filter.until,
            before_at,
            before_id,
            limit + 1,
        )
        .fetch_all(&self.pool)
        .await?;
        let more = entries.len() as i64 > limit;
        entries.truncate(limit as usize);
        let next = entries.last().filter(|_| more).map(|e| JobCursor {
            sort: JobSort::EnqueuedDesc,
            at: e.at,
            job_id: e.id.clone(),
        });
        Ok(AuditPage { entries, next })
    }
}
