//! `GET /v1/audit`: the audit log, newest first, a page at a time (operator and admin keys:
//! an organization's own entries; an admin's, every organization's or `org`'s).

use axum::extract::State;

use axum::response::Response;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::Params;
use crate::problem::Problem;
use crate::routes::jobs::{check_id, urlencode};
use crate::routes::page_response;
use crate::state::AppState;
use gitfleet_client::store::{AuditEntry, AuditFilter, JobCursor};
use gitfleet_contract::Role;

/// `GET /v1/audit` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// An admin key's filter by organization (the organization acted on); another key
    /// sees its own only.
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
    /// One action: `job.retry`, `job.cancel`, `job.delete`, `job.run_now`, `jobs.retry`,
    /// `jobs.delete`, `jobs.run_now`, `sandbox.release`, `key.create`, `key.revoke`,
    /// `worker.drain`, `worker.undrain`, `schedule.run`.
    pub action: Option<String>,
    /// Entries of one key (its public id).
    pub key: Option<String>,
    /// Entries that name this job.
    pub job: Option<String>,
    /// At or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Entries per page, 1-500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
    /// Where the page starts: the `next` of the previous page.
    pub cursor: Option<String>,
}

/// Every action the log records.
pub const ACTIONS: &[&str] = &[
    "job.retry",
    "job.cancel",
    "job.delete",
    "job.run_now",
    "jobs.retry",
    "jobs.delete",
    "jobs.run_now",
    "sandbox.release",
    "key.create",
    "key.revoke",
    "worker.drain",
    "worker.undrain",
    "schedule.run",
];

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// The next page's URL (also in `Link`, `rel="next"`); absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/audit`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<AuditParams>,
) -> Result<Response, Problem> {
    let filter = audit_filter(&caller, &p)?;
    let limit = filter.limit;
    let page = state.store.audit_page(&filter).await?;
    let next = page.next.map(|c| next_url(&p, limit, &c.encode()));
    let page = AuditList {
        entries: page.entries,
        next: next.clone(),
    };
    Ok(page_response(&page, page.next.as_deref()))
}

/// `GET /v1/audit`'s parameters, checked, as the log's filter for `caller` (operator and
/// above; its own organization, or an admin's pick). The dashboard's audit page builds its
/// filter here too.
pub(crate) fn audit_filter(caller: &Caller, p: &AuditParams) -> Result<AuditFilter, Problem> {
    caller.require(Role::Operator)?;
    let org = caller.scope(p.org.as_deref())?;
    if let Some(a) = &p.action
        && !ACTIONS.contains(&a.as_str())
    {
        return Err(Problem::bad_param(
            "action",
            format!("{a:?} is not one of {}", ACTIONS.join(", ")),
        ));
    }
    if let Some(k) = &p.key
        && (k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(Problem::bad_param(
            "key",
            "not a key id (letters and digits)",
        ));
    }
    if let Some(j) = &p.job {
        check_id(j).map_err(|_| Problem::bad_param("job", "not a job id (a ULID)"))?;
    }
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param(
            "limit",
            format!("{limit} is not from 1 to 500"),
        ));
    }
    let before = p
        .cursor
        .as_deref()
        .map(JobCursor::decode)
        .transpose()
        .map_err(|e| Problem::bad_param("cursor", e))?;
    Ok(AuditFilter {
        org,
        action: p.action.clone(),
        key_id: p.key.clone(),
        job_id: p.job.clone(),
        since: p.since,
        until: p.until,
        before,
        limit,
    })
}

fn next_url(p: &AuditParams, limit: i64, cursor: &str) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("org", &p.org),
        ("action", &p.action),
        ("key", &p.key),
        ("job", &p.job),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if let Some(t) = p.since {
        q.push(("since", time(t)));
    }
    if let Some(t) = p.until {
        q.push(("until", time(t)));
    }
    q.push(("limit", limit.to_string()));
    q.push(("cursor", cursor.to_string()));
    let query: Vec<String> = q
        .into_iter()
        .map(|(k, v)| format!("{k}={}", urlencode(&v)))
        .collect();
    format!("/v1/audit?{}", query.join("&"))
}
