//! The dashboard's **Delayed and retrying** and **Dead** views: the jobs the queue holds in
//! that state, with their actions per job (retry a dead one, run a delayed one now, delete
//! either), for the jobs ticked, and for every job matching the filter.
//!
//! The rows come from the history (the jobs list's query, with the state set and the jobs
//! deleted by hand left out), a page at a time. The actions go through the API's own code:
//! one job's through [`act`] (what `POST /v1/jobs/{id}/retry`, `/delete` and `/run-now`
//! run), all matching through [`bulk_action`] (what `POST /v1/jobs/actions` runs), both with
//! [`Surface::Ui`] so the audit log says the dashboard did it. "All matching" is two steps,
//! as the API's are: a dry run counts the jobs the queue holds that match (nothing changes),
//! a confirmation page shows that count, and confirming sends it as `expect`: if more jobs
//! match by then, nothing is done and the page says so.
//!
//! The roles are the API's: anyone signed in sees the views; operators and admins get the
//! checkboxes and buttons; every POST needs the session's CSRF token, and a viewer's
//! (forged) one is refused `403` by the shared code's role check.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::session::{Session, csrf_refused};
use super::views::{ListQuery, RowView, row_view, show_total, time_filter};
use super::{Chrome, html, problem_page, see_other, show_time, urlencode};
use crate::audit::Surface;
use crate::problem::Problem;
use crate::routes::jobs::{
    BulkJobFilter, BulkOutcome, BulkRequest, JobAction, act, bulk_action, check_id, list_page,
};
use crate::state::AppState;
use gitfleet_client::BulkAction;
use gitfleet_contract::Role;

/// Jobs one "for the selected" form acts on at most (a page lists 50).
const SELECTED_MAX: usize = 500;

/// Which of the two views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Delayed jobs: due later, or waiting out a retry's backoff.
    Delayed,
    Dead,
}

impl View {
    /// The state, as the history and the bulk filter name it; also the view's path.
    fn state(self) -> &'static str {
        match self {
            View::Delayed => "delayed",
            View::Dead => "dead",
        }
    }

    fn title(self) -> &'static str {
        match self {
            View::Delayed => "Delayed and retrying",
            View::Dead => "Dead",
        }
    }

    /// The actions the view offers, in the order its buttons show.
    fn actions(self) -> &'static [BulkAction] {
        match self {
            View::Delayed => &[BulkAction::RunNow, BulkAction::Delete],
            View::Dead => &[BulkAction::Retry, BulkAction::Delete],
        }
    }

    fn takes(self, action: BulkAction) -> bool {
        self.actions().contains(&action)
    }
}

/// One job's action for a bulk one.
fn job_action(a: BulkAction) -> JobAction {
    match a {
        BulkAction::Retry => JobAction::Retry,
        BulkAction::Delete => JobAction::Delete,
        BulkAction::RunNow => JobAction::RunNow,
    }
}

/// A button's words for an action.
fn verb(a: BulkAction) -> &'static str {
    match a {
        BulkAction::Retry => "Retry",
        BulkAction::Delete => "Delete",
        BulkAction::RunNow => "Run now",
    }
}

/// What was done, past tense, for the notice after an action.
fn done_verb(a: BulkAction) -> &'static str {
    match a {
        BulkAction::Retry => "retried (back in their queues with fresh attempts)",
        BulkAction::Delete => "deleted (gone from the queue; the history keeps their rows)",
        BulkAction::RunNow => "sent to their queues to run now",
    }
}

fn parse_action(name: &str) -> Option<BulkAction> {
    match name {
        "retry" => Some(BulkAction::Retry),
        "delete" => Some(BulkAction::Delete),
        "run_now" | "run-now" => Some(BulkAction::RunNow),
        _ => None,
    }
}

/// A button of the page: the action's wire name and its words.
pub struct ActionButton {
    pub name: &'static str,
    pub label: &'static str,
    pub danger: bool,
}

fn buttons(view: View) -> Vec<ActionButton> {
    view.actions()
        .iter()
        .map(|a| ActionButton {
            name: a.as_str(),
            label: verb(*a),
            danger: *a == BulkAction::Delete,
        })
        .collect()
}

/// The views' filter: the fields a bulk action's filter has (so "all matching" means what
/// the list shows), as the form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub cursor: String,
}

impl ViewQuery {
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        ViewQuery {
            op: get("op"),
            queue: get("queue"),
            since: get("since"),
            until: get("until"),
            org: get("org"),
            cursor: String::new(),
        }
    }

    fn list(&self, view: View) -> ListQuery {
        ListQuery {
            status: view.state().to_string(),
            op: self.op.clone(),
            queue: self.queue.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            org: self.org.clone(),
            cursor: self.cursor.clone(),
            ..ListQuery::default()
        }
    }

    /// The filter as a query string (no cursor).
    fn query_string(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("op", &self.op),
            ("queue", &self.queue),
            ("since", &self.since),
            ("until", &self.until),
            ("org", &self.org),
        ] {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", urlencode(v.trim())));
            }
        }
        q.join("&")
    }

    /// The filter in words, for the confirmation page.
    fn describe(&self, view: View) -> String {
        let mut parts = vec![format!("state {}", view.state())];
        for (k, v) in [
            ("op", &self.op),
            ("queue", &self.queue),
            ("enqueued since", &self.since),
            ("enqueued before", &self.until),
            ("organization", &self.org),
        ] {
            if !v.trim().is_empty() {
                parts.push(format!("{k} {}", v.trim()));
            }
        }
        parts.join(", ")
    }

    /// The bulk route's filter, its times read as the jobs list reads them.
    fn bulk_filter(&self, view: View) -> Result<BulkJobFilter, Problem> {
        let opt = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(BulkJobFilter {
            state: view.state().to_string(),
            op: opt(&self.op),
            queue: opt(&self.queue),
            org: opt(&self.org),
            since: time_filter("since", &self.since)?,
            until: time_filter("until", &self.until)?,
        })
    }
}

/// What the page says after an action (from the redirect's query: counts and a known
/// action only, never free text).
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    done: Option<String>,
    acted: Option<String>,
    skipped: Option<String>,
    all: Option<String>,
}

impl Notice {
    fn text(&self) -> String {
        let Some(action) = self.done.as_deref().and_then(parse_action) else {
            return String::new();
        };
        let n = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
        let acted = n(&self.acted).unwrap_or(0);
        let jobs = if acted == 1 { "job" } else { "jobs" };
        let mut text = if self.all.is_some() {
            format!("All matching: {acted} {jobs} {}.", done_verb(action))
        } else {
            format!("{acted} {jobs} {}.", done_verb(action))
        };
        if let Some(s) = n(&self.skipped).filter(|s| *s > 0) {
            text.push_str(&format!(
                " {s} left alone: they had left the state since they were counted."
            ));
        }
        text
    }
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    c: Chrome,
    view: &'static str,
    heading: &'static str,
    f: ViewQuery,
    rows: Vec<RowView>,
    total: String,
    next: String,
    filtered: bool,
    error: String,
    notice: String,
    /// Problems with some of the selected jobs, one line each.
    failures: Vec<String>,
    /// Operator and above: checkboxes and buttons.
    actions: bool,
    buttons: Vec<ActionButton>,
    /// The filter as hidden fields of the page's forms.
    hidden: Vec<(&'static str, String)>,
}

fn hidden_fields(f: &ViewQuery) -> Vec<(&'static str, String)> {
    [
        ("op", &f.op),
        ("queue", &f.queue),
        ("since", &f.since),
        ("until", &f.until),
        ("org", &f.org),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| (k, v.trim().to_string()))
    .collect()
}

/// Renders a view: its rows (one indexed page of the history), the total, the buttons.
async fn render(
    state: &AppState,
    session: &Session,
    view: View,
    f: ViewQuery,
    notice: String,
    failures: Vec<String>,
    status: StatusCode,
) -> Response {
    let base = state.config.ui.base.clone();
    let mut status = status;
    let (mut rows, mut total, mut next, mut error) =
        (Vec::new(), String::new(), String::new(), String::new());
    let list = f.list(view);
    let listed = match list.filter(&session.caller) {
        Ok(mut filter) => {
            filter.not_deleted = true;
            list_page(state, &filter).await
        }
        Err(p) => Err(p),
    };
    match listed {
        Ok((page, count)) => {
            rows = page.rows.iter().map(|r| row_view(&base, r)).collect();
            if view == View::Delayed {
                due_from_queue(state, &mut rows).await;
            }
            total = show_total(&count);
            if let Some(c) = page.next {
                let q = f.query_string();
                let sep = if q.is_empty() { "" } else { "&" };
                next = format!(
                    "{base}/{}?{q}{sep}cursor={}",
                    view.state(),
                    urlencode(&c.encode())
                );
            }
        }
        Err(p) => {
            if status == StatusCode::OK {
                status = p.status();
            }
            error = p.detail.clone();
        }
    }
    let filtered = !f.query_string().is_empty();
    let page = BulkPage {
        c: Chrome::new(state, view.title(), view.state())
            .signed_in(session)
            .live(),
        view: view.state(),
        heading: view.title(),
        hidden: hidden_fields(&f),
        filtered,
        f,
        rows,
        total,
        next,
        error,
        notice,
        failures,
        actions: session.caller.role.permits(Role::Operator),
        buttons: buttons(view),
    };
    html(status, &page)
}

/// A delayed job's due time from its record in the queue, for the rows whose history row
/// has none (a job enqueued with a delay: the row keeps only a retry's due time). One read
/// per such row of the page (50 at most), all at once.
async fn due_from_queue(state: &AppState, rows: &mut [RowView]) {
    let reads = rows.iter().map(|r| {
        let wanted = r.due == show_time(None);
        let id = r.id.clone();
        async move {
            if !wanted {
                return None;
            }
            state
                .client
                .job(&id)
                .await
                .ok()
                .flatten()
                .and_then(|j| j.run_at)
        }
    });
    let found = futures::future::join_all(reads).await;
    for (row, due) in rows.iter_mut().zip(found) {
        if let Some(t) = due {
            row.due = show_time(Some(t));
        }
    }
}

async fn view_page(
    state: AppState,
    session: Session,
    view: View,
    f: ViewQuery,
    n: Notice,
) -> Response {
    render(
        &state,
        &session,
        view,
        f,
        n.text(),
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

/// `GET <base>/delayed`: jobs due later or waiting out a retry's backoff.
pub async fn delayed(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<ViewQuery>,
    Query(n): Query<Notice>,
) -> Response {
    view_page(state, session, View::Delayed, f, n).await
}

/// `GET <base>/dead`: jobs that used up their attempts.
pub async fn dead(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<ViewQuery>,
    Query(n): Query<Notice>,
) -> Response {
    view_page(state, session, View::Dead, f, n).await
}

type PairsForm = Result<axum::Form<Vec<(String, String)>>, axum::extract::rejection::FormRejection>;

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST <base>/{dead,delayed}/selected`: one job's action (a row's button, `row=ACTION:ID`)
/// or the action for every ticked job (`action=` and `job=` repeated), each through [`act`],
/// each its own audit entry.
async fn selected(state: AppState, session: Session, view: View, form: PairsForm) -> Response {
    let pairs = form.map(|axum::Form(p)| p).unwrap_or_default();
    if !session.check_csrf(field(&pairs, "csrf")) {
        tracing::info!(key_id = %session.caller.key_id, view = view.state(), "dashboard action without its CSRF token refused");
        return csrf_refused(&state, &session);
    }
    let f = ViewQuery::from_pairs(&pairs);
    let (action, ids): (Option<BulkAction>, Vec<String>) = match field(&pairs, "row") {
        Some(row) => {
            let (a, id) = row.split_once(':').unwrap_or((row, ""));
            (parse_action(a), vec![id.to_string()])
        }
        None => (
            field(&pairs, "action").and_then(parse_action),
            pairs
                .iter()
                .filter(|(k, _)| k == "job")
                .map(|(_, v)| v.clone())
                .collect(),
        ),
    };
    let Some(action) = action.filter(|a| view.takes(*a)) else {
        return problem_page(
            &state,
            &session,
            Problem::bad_param(
                "action",
                format!(
                    "the {} view's actions are {}",
                    view.state(),
                    view.actions()
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        );
    };
    if ids.is_empty() {
        return render(
            &state,
            &session,
            view,
            f,
            String::new(),
            vec!["No job was ticked: tick the jobs first, or use \"all matching\".".into()],
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    if ids.len() > SELECTED_MAX {
        return problem_page(
            &state,
            &session,
            Problem::bad_param(
                "job",
                format!(
                    "{} jobs ticked, over {SELECTED_MAX}; use \"all matching\"",
                    ids.len()
                ),
            ),
        );
    }
    let mut acted = 0u64;
    let mut failures = Vec::new();
    for id in &ids {
        if let Err(p) = check_id(id) {
            failures.push(p.detail.clone());
            continue;
        }
        match act(&state, &session.caller, Surface::Ui, job_action(action), id).await {
            Ok(_) => acted += 1,
            // Not allowed (a viewer's forged form): the same for every job, so say it once.
            Err(p) if p.status() == StatusCode::FORBIDDEN => {
                return problem_page(&state, &session, p);
            }
            Err(p) => failures.push(p.detail.clone()),
        }
    }
    tracing::info!(key_id = %session.caller.key_id, action = action.as_str(), acted, failed = failures.len(), "dashboard action on selected jobs");
    if failures.is_empty() {
        let q = f.query_string();
        let sep = if q.is_empty() { "" } else { "&" };
        return see_other(&format!(
            "{}/{}?{q}{sep}done={}&acted={acted}",
            state.config.ui.base,
            view.state(),
            action.as_str()
        ));
    }
    let notice = if acted > 0 {
        format!(
            "{acted} {} {}.",
            if acted == 1 { "job" } else { "jobs" },
            done_verb(action)
        )
    } else if ids.len() == 1 {
        String::new()
    } else {
        "Nothing was done.".to_string()
    };
    let status = if acted == 0 && ids.len() == 1 {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    render(&state, &session, view, f, notice, failures, status).await
}

/// `POST <base>/delayed/selected`.
pub async fn delayed_selected(
    State(state): State<AppState>,
    session: Session,
    form: PairsForm,
) -> Response {
    selected(state, session, View::Delayed, form).await
}

/// `POST <base>/dead/selected`.
pub async fn dead_selected(
    State(state): State<AppState>,
    session: Session,
    form: PairsForm,
) -> Response {
    selected(state, session, View::Dead, form).await
}

#[derive(Template)]
#[template(path = "bulk_confirm.html")]
struct ConfirmPage {
    c: Chrome,
    view: &'static str,
    heading: &'static str,
    /// The action's wire name and words.
    action: &'static str,
    verb: &'static str,
    danger: bool,
    filter_text: String,
    /// The dry run's count.
    matched: u64,
    hidden: Vec<(&'static str, String)>,
    back: String,
    /// Why the last confirmation was refused (more jobs matched than it counted).
    refused: String,
}

#[derive(Debug, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    action: String,
}

/// The dry run of `action` on every job matching `f`, and its confirmation page.
async fn confirm_page(
    state: &AppState,
    session: &Session,
    view: View,
    f: ViewQuery,
    action: BulkAction,
    refused: String,
) -> Response {
    let filter = match f.bulk_filter(view) {
        Ok(filter) => filter,
        Err(p) => return problem_page(state, session, p),
    };
    let req = BulkRequest {
        action,
        filter,
        dry_run: true,
        expect: None,
    };
    let outcome: BulkOutcome = match bulk_action(state, &session.caller, Surface::Ui, req).await {
        Ok(o) => o,
        Err(p) => return problem_page(state, session, p),
    };
    let status = if refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    let page = ConfirmPage {
        c: Chrome::new(
            state,
            format!("{} all matching", verb(action)),
            view.state(),
        )
        .signed_in(session),
        view: view.state(),
        heading: view.title(),
        action: action.as_str(),
        verb: verb(action),
        danger: action == BulkAction::Delete,
        filter_text: f.describe(view),
        matched: outcome.matched,
        hidden: hidden_fields(&f),
        back: f.query_string(),
        refused,
    };
    html(status, &page)
}

async fn confirm(
    state: AppState,
    session: Session,
    view: View,
    f: ViewQuery,
    q: ConfirmQuery,
) -> Response {
    let Some(action) = parse_action(&q.action).filter(|a| view.takes(*a)) else {
        return problem_page(
            &state,
            &session,
            Problem::bad_param(
                "action",
                format!("{:?} is not an action of this view", q.action),
            ),
        );
    };
    confirm_page(&state, &session, view, f, action, String::new()).await
}

/// `GET <base>/delayed/confirm?action=`: the dry run's count, and the form that confirms it.
pub async fn delayed_confirm(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<ViewQuery>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    confirm(state, session, View::Delayed, f, q).await
}

/// `GET <base>/dead/confirm?action=`.
pub async fn dead_confirm(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<ViewQuery>,
    Query(q): Query<ConfirmQuery>,
) -> Response {
    confirm(state, session, View::Dead, f, q).await
}

/// `POST <base>/{dead,delayed}/all`: the confirmed action on every job matching the filter,
/// with the dry run's count as `expect` (through [`bulk_action`]: one audit entry). More
/// jobs matching now than were counted: nothing is done, and the confirmation page shows
/// the new count with the refusal.
async fn all(state: AppState, session: Session, view: View, form: PairsForm) -> Response {
    let pairs = form.map(|axum::Form(p)| p).unwrap_or_default();
    if !session.check_csrf(field(&pairs, "csrf")) {
        tracing::info!(key_id = %session.caller.key_id, view = view.state(), "dashboard bulk action without its CSRF token refused");
        return csrf_refused(&state, &session);
    }
    let f = ViewQuery::from_pairs(&pairs);
    let Some(action) = field(&pairs, "action")
        .and_then(parse_action)
        .filter(|a| view.takes(*a))
    else {
        return problem_page(
            &state,
            &session,
            Problem::bad_param("action", "not an action of this view"),
        );
    };
    let expect = match field(&pairs, "expect").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) => n,
        _ => {
            return problem_page(
                &state,
                &session,
                Problem::bad_param("expect", "the dry run's count is missing: count again"),
            );
        }
    };
    let filter = match f.bulk_filter(view) {
        Ok(filter) => filter,
        Err(p) => return problem_page(&state, &session, p),
    };
    let req = BulkRequest {
        action,
        filter,
        dry_run: false,
        expect: Some(expect),
    };
    match bulk_action(&state, &session.caller, Surface::Ui, req).await {
        Ok(o) => {
            tracing::info!(key_id = %session.caller.key_id, action = action.as_str(), acted = o.acted, "dashboard bulk action");
            let q = f.query_string();
            let sep = if q.is_empty() { "" } else { "&" };
            see_other(&format!(
                "{}/{}?{q}{sep}done={}&acted={}&skipped={}&all=1",
                state.config.ui.base,
                view.state(),
                action.as_str(),
                o.acted,
                o.skipped
            ))
        }
        Err(p) if p.status() == StatusCode::CONFLICT => {
            confirm_page(&state, &session, view, f, action, p.detail.clone()).await
        }
        Err(p) => problem_page(&state, &session, p),
    }
}

/// `POST <base>/delayed/all`.
pub async fn delayed_all(
    State(state): State<AppState>,
    session: Session,
    form: PairsForm,
) -> Response {
    all(state, session, View::Delayed, form).await
}

/// `POST <base>/dead/all`.
pub async fn dead_all(
    State(state): State<AppState>,
    session: Session,
    form: PairsForm,
) -> Response {
    all(state, session, View::Dead, form).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_view_takes_only_its_own_actions() {
        assert!(View::Dead.takes(BulkAction::Retry));
        assert!(View::Dead.takes(BulkAction::Delete));
        assert!(!View::Dead.takes(BulkAction::RunNow));
        assert!(View::Delayed.takes(BulkAction::RunNow));
        assert!(!View::Delayed.takes(BulkAction::Retry));
        assert_eq!(parse_action("run-now"), Some(BulkAction::RunNow));
        assert_eq!(parse_action("explode"), None);
    }

    #[test]
    fn the_notice_says_only_counts_and_known_actions() {
        let n = Notice {
            done: Some("retry".into()),
            acted: Some("3".into()),
            skipped: Some("1".into()),
            all: Some("1".into()),
        };
        assert!(n.text().starts_with("All matching: 3 jobs retried"));
        assert!(n.text().contains("1 left alone"));
        // A link made to put words on the page shows nothing of them.
        let forged = Notice {
            done: Some("<script>".into()),
            acted: Some("you were hacked".into()),
            ..Notice::default()
        };
        assert_eq!(forged.text(), "");
        let odd = Notice {
            done: Some("delete".into()),
            acted: Some("lots".into()),
            ..Notice::default()
        };
        assert!(odd.text().starts_with("0 jobs deleted"));
    }

    #[test]
    fn the_filter_keeps_its_fields_encoded_and_says_them_in_words() {
        let f = ViewQuery {
            op: " clone ".into(),
            queue: "jobs".into(),
            since: "2026-12-01T09:30".into(),
            ..ViewQuery::default()
        };
        assert_eq!(
            f.query_string(),
            "op=clone&queue=jobs&since=2026-12-01T09%3A30"
        );
        assert_eq!(
            f.describe(View::Dead),
            "state dead, op clone, queue jobs, enqueued since 2026-12-01T09:30"
        );
        let b = f.bulk_filter(View::Dead).expect("a filter");
        assert_eq!(b.op.as_deref(), Some("clone"));
        assert!(b.since.is_some() && b.until.is_none() && b.org.is_none());
        let bad = ViewQuery {
            until: "yesterday".into(),
            ..ViewQuery::default()
        };
        assert_eq!(
            bad.bulk_filter(View::Delayed).unwrap_err().field.as_deref(),
            Some("until")
        );
    }
}
