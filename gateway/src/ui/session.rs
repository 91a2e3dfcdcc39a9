//! Signing in to the dashboard with an API key, the session that follows, and the CSRF
//! token of its forms.
//!
//! The sign-in form posts the key once; the gateway checks it as it checks a bearer key
//! (`Keys::authenticate`) and answers with a session cookie: a random 256-bit token
//! (`HttpOnly`, `SameSite=Strict`, `Secure` when the request came over TLS, its path the
//! dashboard's base). Postgres keeps only the token's SHA-256 with the key's id and an
//! expiry (`ui_sessions`, migration 0007), so any replica takes the cookie, and a session
//! is always read joined to its key: a revoked or expired key ends its sessions at once.
//! The key itself is in no page, cookie or log.
//!
//! Every form carries the session's CSRF token (the SHA-256 of a label and the session's
//! token: unguessable without the cookie, and nothing to store), checked in constant time;
//! a POST without it is refused with `403`. The sign-in form, before there is a session,
//! carries the token of a short-lived cookie of its own (double submit).

use askama::Template;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Chrome, error_page, html, see_other};
use crate::auth::Caller;
use crate::state::AppState;
use gitfleet_client::store;

/// The session cookie's name.
pub const COOKIE: &str = "gitfleet_session";
/// The sign-in form's cookie (its CSRF token, before there is a session).
const SIGNIN_COOKIE: &str = "gitfleet_signin";
/// How long a sign-in form may be left open.
const SIGNIN_FORM_SECS: u64 = 3600;

/// A signed-in browser: the key it signed in with (as a [`Caller`], so the API's rules of
/// roles and organizations apply as they are), and its forms' CSRF token.
pub struct Session {
    pub caller: Caller,
    pub key_name: Option<String>,
    pub csrf: String,
    token: String,
}

impl Session {
    /// Checks a form's CSRF token, in constant time.
    pub fn check_csrf(&self, sent: Option<&str>) -> bool {
        let sent = sent.unwrap_or("");
        bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The CSRF token of the session whose token is `token`.
fn csrf_of(token: &str) -> String {
    let d = Sha256::digest(format!("gitfleet-ui-csrf\0{token}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request reached the gateway over TLS: the gateway itself serves plain HTTP,
/// so this is what a TLS-terminating proxy in front says (`X-Forwarded-Proto: https`, or
/// `Forwarded: proto=https`).
fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        });
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, the dashboard's path, Secure over TLS.
fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are ASCII tokens")
}

/// Why a request has no session.
pub enum NoSession {
    /// No cookie, or one of no live session: a page sends the browser to sign in.
    SignedOut { to_signin: String, page: bool },
    /// Postgres cannot be reached.
    Unavailable(AppState),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignedOut {
                to_signin,
                page: true,
            } => see_other(&to_signin),
            NoSession::SignedOut { page: false, .. } => (
                StatusCode::UNAUTHORIZED,
                [(header::CACHE_CONTROL, "no-store")],
                "signed out: sign in again",
            )
                .into_response(),
            NoSession::Unavailable(state) => error_page(
                &state,
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "the record (Postgres) cannot be reached, so the session cannot be checked; \
                 retry shortly",
            ),
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let base = &state.config.ui.base;
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // Back to the page asked for, under the base the browser sees.
        let next = here
            .strip_prefix("/ui")
            .filter(|_| !here.starts_with(base.as_str()))
            .map(|rest| format!("{base}{rest}"))
            .unwrap_or_else(|| here.to_string());
        let signed_out = NoSession::SignedOut {
            to_signin: format!("{base}/signin?next={}", super::urlencode(&next)),
            page: parts.method == Method::GET && !here.contains("/live"),
        };
        let Some(token) = cookie(&parts.headers, COOKIE).filter(|t| store::is_token(t)) else {
            return Err(signed_out);
        };
        let key = match state.store.session_key(token).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(signed_out),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a dashboard session");
                return Err(NoSession::Unavailable(state.clone()));
            }
        };
        state.keys.mark_used(&key.id);
        Ok(Session {
            caller: Caller {
                key_id: key.id,
                org: key.org,
                role: key.role,
                key_name: key.name.clone(),
            },
            key_name: key.name,
            csrf: csrf_of(token),
            token: token.to_string(),
        })
    }
}

impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, std::convert::Infallible> {
        Ok(
            <Session as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    c: Chrome,
    next: String,
    error: String,
}

#[derive(Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
}

/// Where to go after signing in: `next` if it is a page of the dashboard, else the overview.
fn safe_next(base: &str, next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == base
                || n.starts_with(&format!("{base}/"))
                || n.starts_with(&format!("{base}?")))
                && !n.contains("//")
                && !n.contains('\\')
                && n.chars().all(|c| c.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => format!("{base}/"),
    }
}

/// `GET <base>/signin`: the form (with a fresh token in its cookie and its hidden field).
pub async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SigninQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let next = safe_next(&base, q.next.as_deref());
    signin_form(&state, &headers, StatusCode::OK, next, String::new())
}

fn signin_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    error: String,
) -> Response {
    let token = match store::random_token() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no random token for the sign-in form");
            return error_page(
                state,
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gateway could not make a random token; see its log",
            );
        }
    };
    let mut c = Chrome::new(state, "Sign in", "");
    c.csrf = csrf_of(&token);
    let mut res = html(status, &SigninPage { c, next, error });
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SIGNIN_COOKIE,
            &token,
            &state.config.ui.base,
            SIGNIN_FORM_SECS,
            over_tls(headers),
        ),
    );
    res
}

#[derive(Deserialize)]
pub struct SigninForm {
    #[serde(default)]
    key: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// `POST <base>/signin`: checks the key; a good one gets a session cookie and goes on to
/// `next`, a bad one the form again (`401`), saying so without saying why.
pub async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::Form<SigninForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return error_page(
            &state,
            None,
            StatusCode::BAD_REQUEST,
            "the sign-in form could not be read",
        );
    };
    let base = state.config.ui.base.clone();
    let next = safe_next(&base, form.next.as_deref());
    let form_token = cookie(&headers, SIGNIN_COOKIE).filter(|t| store::is_token(t));
    let csrf_ok = form_token.is_some_and(|t| {
        bool::from(
            form.csrf
                .as_deref()
                .unwrap_or("")
                .as_bytes()
                .ct_eq(csrf_of(t).as_bytes()),
        )
    });
    if !csrf_ok {
        return error_page(
            &state,
            None,
            StatusCode::FORBIDDEN,
            "the sign-in form's token is missing or stale: open the sign-in page again",
        );
    }
    let key = form.key.trim();
    let found = match state.keys.authenticate(key).await {
        Ok(found) => found,
        Err(p) => return error_page(&state, None, p.status(), p.detail.clone()),
    };
    let Some(key) = found else {
        return signin_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            next,
            "That key is not valid: unknown, revoked or expired.".into(),
        );
    };
    let ttl = state.config.ui.session_ttl;
    let token = match state.store.create_session(&key.id, ttl).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record a dashboard session");
            return error_page(
                &state,
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "the record (Postgres) cannot be reached; retry shortly",
            );
        }
    };
    tracing::info!(key_id = %key.id, org = %key.org, role = %key.role, "dashboard sign-in");
    let secure = over_tls(&headers);
    let mut res = see_other(&next);
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &token, &base, ttl.as_secs(), secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, "", &base, 0, secure),
    );
    res
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// `POST <base>/signout`: ends the session (everywhere: its row is deleted) and clears
/// the cookie.
pub async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sent = form.ok().and_then(|axum::Form(f)| f.csrf);
    if !session.check_csrf(sent.as_deref()) {
        return csrf_refused(&state, &session);
    }
    if let Err(e) = state.store.delete_session(&session.token).await {
        tracing::warn!(error = %e, "cannot delete a dashboard session");
        return error_page(
            &state,
            Some(&session),
            StatusCode::SERVICE_UNAVAILABLE,
            "the record (Postgres) cannot be reached; retry shortly",
        );
    }
    let base = &state.config.ui.base;
    let mut res = see_other(&format!("{base}/signin"));
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(COOKIE, "", base, 0, over_tls(&headers)),
    );
    res
}

/// The answer to a form without its session's CSRF token: `403`.
pub fn csrf_refused(state: &AppState, session: &Session) -> Response {
    error_page(
        state,
        Some(session),
        StatusCode::FORBIDDEN,
        "this form's CSRF token is missing or wrong: reload the page and try again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_dashboard() {
        assert_eq!(
            safe_next("/ui", Some("/ui/jobs?status=dead")),
            "/ui/jobs?status=dead"
        );
        assert_eq!(safe_next("/ui", Some("/ui")), "/ui");
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example/ui/"),
            Some("/uix"),
            Some("/ui//evil.example"),
            Some("/ui/\\evil"),
            Some("/v1/keys"),
        ] {
            assert_eq!(safe_next("/ui", bad), "/ui/", "{bad:?}");
        }
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gitfleet_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "gitfleet"), None);
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own_and_checked_whole() {
        let s = Session {
            caller: Caller {
                key_id: "k".into(),
                org: "acme".into(),
                role: gitfleet_contract::Role::Viewer,
                key_name: None,
            },
            key_name: None,
            csrf: csrf_of("token-a"),
            token: "token-a".into(),
        };
        assert!(s.check_csrf(Some(&csrf_of("token-a"))));
        assert!(!s.check_csrf(Some(&csrf_of("token-b"))));
        assert!(!s.check_csrf(Some(&s.csrf[..63])));
        assert!(!s.check_csrf(Some("")));
        assert!(!s.check_csrf(None));
        assert!(!s.csrf.contains("token-a"));
    }
}
