//! The routes of the API, by what they act on.

pub mod audit;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod repositories;
pub mod schedule;

use crate::problem::Problem;

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
