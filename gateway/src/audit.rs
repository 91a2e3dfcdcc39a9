//! The audit log's gateway side: every action handler (retry, cancel, delete, run now, the
//! bulk actions, releasing a sandbox, making and revoking keys, draining and undraining a
//! worker, running a scheduler task now) fills an [`Audit`] as it
//! goes and hands it, with how the action ended, to the background writer
//! ([`Audit::finish`]): never a write in the request path, and nothing lost while Postgres is
//! away (the writer keeps it in memory, then in its spool). `GET /v1/audit` reads it back.
//!
//! Who is the key's public id, name, role and organization, never its secret. The surface
//! (`api` or `ui`) is the caller's word: the `Gitfleet-Surface` header over HTTP, or what the
//! dashboard passes when it calls a handler's logic in-process.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::state::AppState;
use gitfleet_client::store::{AUDIT_MAX_JOB_IDS, AuditEntry, Record};

/// The request header naming the surface an action comes from.
pub const SURFACE_HEADER: &str = "gitfleet-surface";

/// Where an action was taken: the API itself, or the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    #[default]
    Api,
    Ui,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Api => "api",
            Surface::Ui => "ui",
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Surface {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(v) = parts.headers.get(SURFACE_HEADER) else {
            return Ok(Surface::Api);
        };
        match v.to_str().map(str::trim) {
            Ok("api") => Ok(Surface::Api),
            Ok("ui") => Ok(Surface::Ui),
            _ => Err(Problem::bad_param(
                "Gitfleet-Surface",
                "must be `api` or `ui`",
            )),
        }
    }
}

/// One action's entry, filled in as the action goes.
#[derive(Debug, Clone)]
pub struct Audit {
    action: &'static str,
    surface: Surface,
    /// The organization acted on; starts as the caller's own and is set to the job's (or
    /// the key's, the sandbox's) once known. `None`: every organization.
    pub org: Option<String>,
    pub target: Option<String>,
    pub job_ids: Vec<String>,
    pub filter: Option<Value>,
    pub matched: Option<i64>,
    pub affected: Option<i64>,
}

impl Audit {
    pub fn new(action: &'static str, caller: &Caller, surface: Surface) -> Self {
        Self {
            action,
            surface,
            org: Some(caller.org.clone()),
            target: None,
            job_ids: Vec::new(),
            filter: None,
            matched: None,
            affected: None,
        }
    }

    /// Keeps the jobs' ids, the first [`AUDIT_MAX_JOB_IDS`] of them.
    pub fn jobs<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        let room = AUDIT_MAX_JOB_IDS.saturating_sub(self.job_ids.len());
        self.job_ids
            .extend(ids.into_iter().take(room).map(str::to_string));
    }

    /// Hands the entry, with how the action ended, to the background writer. Never blocks.
    pub fn finish<T>(self, state: &AppState, caller: &Caller, result: &Result<T, Problem>) {
        let (outcome, detail) = match result {
            Ok(_) => ("ok".to_string(), None),
            Err(p) => (p.kind.clone(), Some(p.detail.clone())),
        };
        let entry = AuditEntry {
            id: ulid::Ulid::new().to_string(),
            at: Some(Utc::now()),
            org_id: self.org,
            key_id: caller.key_id.clone(),
            key_name: caller.key_name.clone(),
            key_org: caller.org.clone(),
            key_role: caller.role.as_str().to_string(),
            surface: self.surface.as_str().to_string(),
            action: self.action.to_string(),
            target: self.target,
            job_ids: self.job_ids,
            filter: self.filter,
            matched: self.matched,
            affected: self.affected,
            outcome,
            detail,
        };
        match state.client.recorder() {
            Some(r) => r.record(Record::Audit(entry)),
            None => tracing::error!(
                action = entry.action,
                "no record writer: an audit entry was dropped"
            ),
        }
    }
}
