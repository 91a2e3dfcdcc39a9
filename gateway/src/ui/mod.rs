//! The dashboard: server-rendered HTML at `/ui` (or `GITFLEET_GATEWAY_UI_BASE`), for
//! people. Pages are askama templates (`gateway/templates/`, checked when the crate
//! compiles); the one stylesheet and the one small script are compiled into the binary and
//! served under a name that carries their hash, so browsers keep them for good.
//!
//! - [`session`]: sign-in with an API key, the session cookie (a token whose SHA-256 is kept
//!   in Postgres, so every replica knows it), CSRF tokens, sign-out.
//! - [`views`]: the overview, the jobs list, a job's page and its actions (retry, cancel,
//!   delete, run now),
//!   reading through the same store and client calls as `/v1`.
//! - [`bulk`]: the delayed and dead views, their actions per job, for the ticked jobs and
//!   for all matching a filter (a dry run's count, then a confirmation).
//! - [`audit`]: the audit log.
//! - [`fleet`]: workers (drain, undrain), sandboxes (release), repositories, the schedule
//!   (run a task now), organizations and their keys, through the functions their `/v1`
//!   routes call.
//! - [`live`]: server-sent events for live pages, computed once per interval per process
//!   for every open page.
//!
//! docs/dashboard.md says what each role sees and may do.

pub mod audit;
pub mod bulk;
pub mod chart;
pub mod fleet;
pub mod live;
pub mod session;
pub mod views;

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use crate::config::UiConfig;
use crate::problem::Problem;
use crate::state::AppState;

const CSS: &str = include_str!("../../assets/ui.css");
const JS: &str = include_str!("../../assets/ui.js");

/// The dashboard's routes, under its base path and (when that is another) under `/ui` too:
/// behind a proxy that strips its prefix, requests arrive at `/ui`; links always use the
/// base.
pub fn router(ui: &UiConfig) -> Router<AppState> {
    let mut router = routes(&ui.base);
    if ui.base != "/ui" {
        router = router.merge(routes("/ui"));
    }
    router
}

fn routes(b: &str) -> Router<AppState> {
    Router::new()
        .route(b, get(views::overview))
        .route(&format!("{b}/"), get(views::overview))
        .route(
            &format!("{b}/signin"),
            get(session::signin_page).post(session::signin),
        )
        .route(&format!("{b}/signout"), post(session::signout))
        .route(&format!("{b}/jobs"), get(views::jobs))
        .route(&format!("{b}/jobs/{{id}}"), get(views::job))
        .route(
            &format!("{b}/jobs/{{id}}/{{action}}"),
            post(views::job_action),
        )
        .route(&format!("{b}/delayed"), get(bulk::delayed))
        .route(
            &format!("{b}/delayed/selected"),
            post(bulk::delayed_selected),
        )
        .route(&format!("{b}/delayed/confirm"), get(bulk::delayed_confirm))
        .route(&format!("{b}/delayed/all"), post(bulk::delayed_all))
        .route(&format!("{b}/dead"), get(bulk::dead))
        .route(&format!("{b}/dead/selected"), post(bulk::dead_selected))
        .route(&format!("{b}/dead/confirm"), get(bulk::dead_confirm))
        .route(&format!("{b}/dead/all"), post(bulk::dead_all))
        .route(&format!("{b}/audit"), get(audit::audit))
        .route(&format!("{b}/workers"), get(fleet::workers))
        .route(&format!("{b}/workers/{{id}}/drain"), post(fleet::drain))
        .route(&format!("{b}/workers/{{id}}/undrain"), post(fleet::undrain))
        .route(&format!("{b}/sandboxes"), get(fleet::sandboxes))
        .route(
            &format!("{b}/sandboxes/{{id}}/release"),
            post(fleet::release),
        )
        .route(&format!("{b}/repositories"), get(fleet::repositories))
        .route(&format!("{b}/schedule"), get(fleet::schedule))
        .route(&format!("{b}/schedule/{{task}}/run"), post(fleet::run))
        .route(&format!("{b}/orgs"), get(fleet::orgs))
        .route(&format!("{b}/live"), get(live::stream))
        .route(&format!("{b}/live/stats"), get(live::stats))
        .route(&format!("{b}/assets/{{name}}"), get(asset))
        .route(&format!("{b}/{{*rest}}"), get(views::not_found))
}

/// The assets' names: `ui-<first 12 hex digits of the SHA-256>.css` (and `.js`).
pub struct Assets {
    pub css: String,
    pub js: String,
}

pub fn assets() -> &'static Assets {
    static NAMES: OnceLock<Assets> = OnceLock::new();
    NAMES.get_or_init(|| {
        let short = |text: &str| {
            let d = Sha256::digest(text.as_bytes());
            d.iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        Assets {
            css: format!("ui-{}.css", short(CSS)),
            js: format!("ui-{}.js", short(JS)),
        }
    })
}

/// `GET <base>/assets/{name}`: the stylesheet or the script, kept by browsers for a year
/// (a new build has new names).
async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let names = assets();
    let (body, kind) = if name == names.css {
        (CSS, "text/css; charset=utf-8")
    } else if name == names.js {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{name}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_string(),
            ),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// What every page's frame shows: the base path, the signed-in key, the CSRF token of its
/// forms, the assets, whether the page is live.
pub struct Chrome {
    pub base: String,
    pub title: String,
    /// The nav's current item (`overview`, `jobs`, `delayed`, `dead`, `audit`, `workers`,
    /// `sandboxes`, `repositories`, `schedule`, `orgs`), or empty.
    pub nav: &'static str,
    pub user: Option<User>,
    pub csrf: String,
    pub css: String,
    pub js: String,
    /// The live stream's URL, for pages that update themselves.
    pub live: Option<String>,
}

/// Who is signed in, as the frame shows it (never the key itself).
pub struct User {
    pub org: String,
    pub role: String,
    pub key_id: String,
    pub key_name: String,
    pub admin: bool,
}

impl Chrome {
    pub fn new(state: &AppState, title: impl Into<String>, nav: &'static str) -> Self {
        let base = state.config.ui.base.clone();
        let names = assets();
        Chrome {
            css: format!("{base}/assets/{}", names.css),
            js: format!("{base}/assets/{}", names.js),
            base,
            title: title.into(),
            nav,
            user: None,
            csrf: String::new(),
            live: None,
        }
    }

    pub fn signed_in(mut self, s: &session::Session) -> Self {
        self.user = Some(User {
            org: s.caller.org.clone(),
            role: s.caller.role.to_string(),
            key_id: s.caller.key_id.clone(),
            key_name: s.key_name.clone().unwrap_or_default(),
            admin: s.caller.is_admin(),
        });
        self.csrf = s.csrf.clone();
        self
    }

    pub fn live(mut self) -> Self {
        self.live = Some(format!("{}/live", self.base));
        self
    }

    /// Live, as `page` (`workers`, `sandboxes`): its stream also carries that page's rows,
    /// and the feed reads them only while such a page listens.
    pub fn live_page(mut self, page: &str) -> Self {
        self.live = Some(format!("{}/live?page={page}", self.base));
        self
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    heading: String,
    detail: String,
}

/// An HTML page for `status`: what went wrong, in words, inside the frame.
pub fn error_page(
    state: &AppState,
    session: Option<&session::Session>,
    status: StatusCode,
    detail: impl Into<String>,
) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found".to_string(),
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::CONFLICT => "Not possible now".to_string(),
        s if s.is_server_error() => "Unavailable".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    let mut c = Chrome::new(state, heading.clone(), "");
    if let Some(s) = session {
        c = c.signed_in(s);
    }
    let page = ErrorPage {
        c,
        status: status.as_u16(),
        heading,
        detail: detail.into(),
    };
    html(status, &page)
}

/// A problem of the API's shared code (not found, not allowed, Redis away) as a page.
pub fn problem_page(state: &AppState, session: &session::Session, p: Problem) -> Response {
    error_page(state, Some(session), p.status(), p.detail.clone())
}

/// A rendered template, with the headers every page has: no caching, no framing, and a
/// content security policy that allows nothing but the gateway's own assets.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the gateway's log",
            )
                .into_response();
        }
    };
    let mut res = (status, body).into_response();
    page_headers(res.headers_mut());
    res
}

/// The headers of every dashboard page.
pub fn page_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn urlencode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A time as the pages show it (UTC, to the second), or `—`.
pub fn show_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Redirects with `303 See Other` (after a form, the browser GETs `to`).
pub fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
