//! The routes of the API, by what they act on.

pub mod audit;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod repositories;
pub mod schedule;

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::problem::Problem;

/// A page of a list as JSON, with its next page's URL (also in the page, as `next`) in a
/// `Link: <…>; rel="next"` header when there is one.
pub(crate) fn page_response(page: impl Serialize, next: Option<&str>) -> Response {
    let mut res = Json(page).into_response();
    if let Some(next) = next
        && let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        res.headers_mut().insert(header::LINK, v);
    }
    res
}

/// Runs a change to the queue (an enqueue, a retry, a cancel) in a task of its own, so that
/// it ends even if the caller hangs up: the request's future is dropped then, and a change
/// dropped after Redis made it but before its row went to the record writer would leave the
/// history without it (a job with no row, a retry or cancel not recorded).
pub(crate) async fn run_to_end<T: Send + 'static>(
    change: impl Future<Output = T> + Send + 'static,
) -> Result<T, Problem> {
    tokio::spawn(change)
        .await
        .map_err(|e| Problem::internal(format!("the change to the queue failed: {e}")))
}
