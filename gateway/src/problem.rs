//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every error the gateway answers is one [`Problem`]: an HTTP status, gitfleet's `kind`
//! (the job contract's kinds where one applies, else one of the gateway's own: `not_found`,
//! `rate_limited`, `payload_too_large`, `unavailable`), a `detail` a person can act on and,
//! when one field of the request is wrong, that `field`. `type` points into the served docs
//! (`/docs#problem-<kind>`). Bad input is never a 5xx.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gitfleet_client::{ErrorKind, JobError, QueueError};
use schemars::JsonSchema;
use serde::Serialize;

/// The gateway's own kinds, beside the job contract's [`ErrorKind`]s.
pub const GATEWAY_KINDS: [&str; 5] = [
    "not_found",
    "rate_limited",
    "payload_too_large",
    "method_not_allowed",
    "unavailable",
];

/// Every kind a problem document may carry: the contract's, then the gateway's own. `/docs`
/// explains each at `#problem-<kind>`.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    ErrorKind::ALL
        .into_iter()
        .map(ErrorKind::as_str)
        .chain(GATEWAY_KINDS)
}

/// An RFC 9457 problem document, as every error of the API is answered.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Problem")]
pub struct ProblemDoc {
    /// `/docs#problem-<kind>`: where the kind is explained.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// gitfleet's kind: one of the job contract's error kinds, or `not_found`,
    /// `rate_limited`, `payload_too_large`, `method_not_allowed`, `unavailable`.
    pub kind: String,
    /// The one field that is wrong (`args.repo_url`, `[3].op`, `Idempotency-Key`, `wait`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(skip)]
    www_authenticate: bool,
}

/// The error every handler answers with: a [`ProblemDoc`] (boxed, so results stay small).
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDoc>);

impl std::ops::Deref for Problem {
    type Target = ProblemDoc;
    fn deref(&self) -> &ProblemDoc {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDoc {
        &mut self.0
    }
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        debug_assert!(
            kinds().any(|k| k == kind),
            "problem kind {kind:?} is not in problem::kinds() (and so not in /docs)"
        );
        Self(Box::new(ProblemDoc {
            type_: format!("/docs#problem-{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            kind: kind.to_string(),
            field: None,
            retry_after: None,
            www_authenticate: false,
        }))
    }

    /// `400 invalid_input`, naming `field` if given.
    pub fn invalid(field: Option<&str>, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail);
        p.field = field.map(str::to_string);
        p
    }

    /// A bad query parameter or header, named.
    pub fn bad_param(name: &str, detail: impl std::fmt::Display) -> Self {
        Self::invalid(Some(name), format!("{name}: {detail}"))
    }

    /// `401 auth`: no key, or one that is unknown, revoked or expired (all alike, so a
    /// caller learns nothing about which keys exist).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::UNAUTHORIZED, "auth", detail);
        p.www_authenticate = true;
        p
    }

    /// `403 auth`: the key is good but its role does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "auth", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this API key is over its request rate; retry in {retry_after_secs} s"),
        );
        p.retry_after = Some(retry_after_secs);
        p
    }

    /// `503 unavailable`: Redis or Postgres cannot be reached; the caller may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after = Some(1);
        p
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The problem for a job error from the contract: its kind, and the field its message
    /// names (`<field>: <reason>`), under `prefix` (`args.` for a job's args).
    pub fn from_job_error(e: &JobError, prefix: &str) -> Self {
        let status = match e.kind {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Auth => StatusCode::FORBIDDEN,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::SandboxNotFound => StatusCode::NOT_FOUND,
            ErrorKind::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Network => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut p = Self::new(status, e.kind.as_str(), e.message.clone());
        if e.kind == ErrorKind::InvalidInput {
            p.field = field_of(&e.message).map(|f| format!("{prefix}{f}"));
        }
        p
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The field a contract message names: the text before its first `": "`, when that is a
/// field path (`repo_url`, `files[2].path`).
pub fn field_of(message: &str) -> Option<&str> {
    let (head, _) = message.split_once(": ")?;
    let ok = !head.is_empty()
        && head.len() <= 100
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    ok.then_some(head)
}

impl From<QueueError> for Problem {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(err) => Problem::from_job_error(&err, ""),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "redis unavailable");
                Problem::unavailable("the queue (Redis) cannot be reached; retry shortly")
            }
            e => {
                tracing::error!(error = %e, "queue error");
                Problem::internal("the queue answered unexpectedly; see the gateway's log")
            }
        }
    }
}

impl From<gitfleet_client::store::StoreError> for Problem {
    fn from(e: gitfleet_client::store::StoreError) -> Self {
        use gitfleet_client::store::StoreError;
        if let StoreError::Invalid { field, message } = e {
            return Problem::invalid(Some(field), message);
        }
        tracing::warn!(error = %e, "postgres unavailable");
        Problem::unavailable("the record (Postgres) cannot be reached; retry shortly")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&*self.0).expect("plain data");
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.www_authenticate {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gitfleet\""),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contract_message_names_its_field() {
        assert_eq!(field_of("repo_url: must be https"), Some("repo_url"));
        assert_eq!(field_of("files[2].path: absolute"), Some("files[2].path"));
        assert_eq!(field_of("job 3: repo_url: bad"), None);
        assert_eq!(field_of("no field here"), None);
    }

    #[test]
    fn an_invalid_job_is_a_400_naming_the_field_under_args() {
        let p = Problem::from_job_error(&JobError::invalid_input("branch: empty"), "args.");
        assert_eq!(p.status, 400);
        assert_eq!(p.kind, "invalid_input");
        assert_eq!(p.field.as_deref(), Some("args.branch"));
        assert_eq!(p.type_, "/docs#problem-invalid_input");
    }
}
