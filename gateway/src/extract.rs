//! Request extractors whose rejections are problem documents naming what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{Problem, field_of};

/// The request body's bytes, at most `GITFLEET_GATEWAY_MAX_BODY_BYTES` (`413` past it).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) => Err(body_problem(e)),
        }
    }
}

fn body_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is over the gateway's limit (GITFLEET_GATEWAY_MAX_BODY_BYTES)",
        )
    } else {
        Problem::invalid(None, format!("the request body cannot be read: {e}"))
    }
}

/// Query parameters; a bad one is a `400` naming it.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // Postgres text cannot hold NUL: a filter with one is bad input, named, rather than
        // an error of the store.
        if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            && let Some((name, _)) = pairs.iter().find(|(_, v)| v.contains('\0'))
        {
            return Err(Problem::bad_param(name, "must not contain NUL characters"));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => Err(query_problem(e)),
        }
    }
}

fn query_problem(e: QueryRejection) -> Problem {
    let text = e.body_text();
    // "Failed to deserialize query string: wait: invalid digit found in string"
    let detail = text
        .split_once(": ")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(text);
    let field = field_of(&detail).map(str::to_string);
    let mut p = Problem::invalid(None, format!("query: {detail}"));
    p.field = field;
    p
}

/// A path parameter (`/v1/jobs/{id}`); one that cannot be read (not UTF-8 once
/// percent-decoded) is a `400` problem naming it, as every other bad input.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let value = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => v,
            Err(e) => return Err(path_problem(e)),
        };
        // As for query parameters: no NUL reaches Postgres.
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await
            && let Some((name, _)) = raw.iter().find(|(_, v)| v.contains('\0'))
        {
            return Err(Problem::bad_param(name, "must not contain NUL characters"));
        }
        Ok(Path(value))
    }
}

fn path_problem(e: PathRejection) -> Problem {
    if e.status().is_server_error() {
        tracing::error!(error = %e, "a route's path parameters do not match its handler");
        return Problem::internal("the route's path parameters cannot be read");
    }
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(inner) = &e
        && let ErrorKind::InvalidUtf8InPathParam { key } = inner.kind()
    {
        return Problem::bad_param(key, "not UTF-8 once percent-decoded");
    }
    Problem::invalid(None, format!("path: {}", e.body_text()))
}

/// Parses `body` as JSON into `T`, naming the path of a field that is wrong.
pub fn json<T: DeserializeOwned>(value: serde_json::Value, prefix: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{path}")
        };
        let field = field.trim_start_matches('.').to_string();
        let detail = if field.is_empty() {
            format!("body: {}", e.inner())
        } else {
            format!("{field}: {}", e.inner())
        };
        let mut p = Problem::invalid(None, detail);
        p.field = (!field.is_empty()).then_some(field);
        p
    })
}

/// The body as a JSON value; not JSON is a `400`.
pub fn json_value(body: &[u8]) -> Result<serde_json::Value, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::invalid(None, format!("body: not valid JSON: {e}")))
}
