//! The dashboard's audit log: every action taken from the dashboard or the API (who, what,
//! when, from which surface, on which jobs, how it ended), newest first, a page at a time.
//! The filters and the rules are `GET /v1/audit`'s, through its own code
//! ([`audit_filter`]): operators and admins read it, an operator its own organization's
//! entries, an admin every organization's or the one picked.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::Session;
use super::views::time_filter;
use super::{Chrome, html, problem_page, show_time, urlencode};
use crate::problem::Problem;
use crate::routes::audit::{ACTIONS, AuditParams, audit_filter};
use crate::state::AppState;
use gitfleet_client::store::AuditEntry;

/// Entries per page.
const PAGE: i64 = 50;
/// Job ids an entry's row links at most; the rest are counted.
const SHOWN_JOBS: usize = 10;

/// The page's filters, as the form sends them (empty: not set).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub cursor: String,
}

impl AuditQuery {
    fn query_string(&self, cursor: Option<&str>) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("org", &self.org),
            ("action", &self.action),
            ("key", &self.key),
            ("job", &self.job),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", urlencode(v.trim())));
            }
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", urlencode(c)));
        }
        q.join("&")
    }

    fn params(&self) -> Result<AuditParams, Problem> {
        let opt = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(AuditParams {
            org: opt(&self.org),
            action: opt(&self.action),
            key: opt(&self.key),
            job: opt(&self.job),
            since: time_filter("since", &self.since)?,
            until: time_filter("until", &self.until)?,
            limit: Some(PAGE),
            cursor: opt(&self.cursor),
        })
    }
}

/// An entry as a row shows it.
struct EntryView {
    id: String,
    at: String,
    key_id: String,
    key_name: String,
    key_role: String,
    key_org: String,
    action: String,
    surface: String,
    org: String,
    target: String,
    /// The first jobs, each with its page's URL.
    jobs: Vec<(String, String)>,
    more_jobs: usize,
    /// A bulk action's filter (compact JSON), matched and affected counts.
    filter: String,
    counts: String,
    outcome: String,
    detail: String,
}

fn entry_view(base: &str, e: AuditEntry) -> EntryView {
    let more_jobs = e.job_ids.len().saturating_sub(SHOWN_JOBS);
    let counts = match (e.matched, e.affected) {
        (Some(m), Some(a)) => format!("matched {m}, acted on {a}"),
        (Some(m), None) => format!("matched {m}"),
        (None, Some(a)) => format!("acted on {a}"),
        (None, None) => String::new(),
    };
    EntryView {
        id: e.id,
        at: show_time(e.at),
        key_id: e.key_id,
        key_name: e.key_name.unwrap_or_default(),
        key_role: e.key_role,
        key_org: e.key_org,
        action: e.action,
        surface: e.surface,
        org: e.org_id.unwrap_or_else(|| "every organization".to_string()),
        target: e.target.unwrap_or_default(),
        jobs: e
            .job_ids
            .into_iter()
            .take(SHOWN_JOBS)
            .map(|id| (format!("{base}/jobs/{id}"), id))
            .collect(),
        more_jobs,
        filter: e.filter.map(|f| f.to_string()).unwrap_or_default(),
        counts,
        outcome: e.outcome,
        detail: e.detail.unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    f: AuditQuery,
    actions: Vec<(&'static str, bool)>,
    entries: Vec<EntryView>,
    next: String,
    filtered: bool,
    error: String,
}

/// `GET <base>/audit`: the audit log, newest first, filtered as `GET /v1/audit` is.
/// A viewer or producer is refused (`403`), as by the API.
pub async fn audit(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<AuditQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let filter = match f.params().and_then(|p| audit_filter(&session.caller, &p)) {
        Ok(filter) => filter,
        // Not allowed is a page of its own; a bad filter is said above the form.
        Err(p) if p.status() == StatusCode::FORBIDDEN && p.field.is_none() => {
            return problem_page(&state, &session, p);
        }
        Err(p) => return render(&state, &session, f, Vec::new(), String::new(), p),
    };
    match state.store.audit_page(&filter).await {
        Ok(page) => {
            let next = page
                .next
                .map(|c| format!("{base}/audit?{}", f.query_string(Some(&c.encode()))))
                .unwrap_or_default();
            let entries = page
                .entries
                .into_iter()
                .map(|e| entry_view(&base, e))
                .collect();
            let page = AuditPage {
                c: Chrome::new(&state, "Audit log", "audit").signed_in(&session),
                actions: action_choices(&f),
                filtered: !f.query_string(None).is_empty(),
                f,
                entries,
                next,
                error: String::new(),
            };
            html(StatusCode::OK, &page)
        }
        Err(e) => render(&state, &session, f, Vec::new(), String::new(), e.into()),
    }
}

fn action_choices(f: &AuditQuery) -> Vec<(&'static str, bool)> {
    ACTIONS
        .iter()
        .map(|a| (*a, f.action.trim() == *a))
        .collect()
}

fn render(
    state: &AppState,
    session: &Session,
    f: AuditQuery,
    entries: Vec<EntryView>,
    next: String,
    p: Problem,
) -> Response {
    let page = AuditPage {
        c: Chrome::new(state, "Audit log", "audit").signed_in(session),
        actions: action_choices(&f),
        filtered: !f.query_string(None).is_empty(),
        f,
        entries,
        next,
        error: p.detail.clone(),
    };
    html(p.status(), &page)
}
