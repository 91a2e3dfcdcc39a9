//! One tool call: the job enqueued for the caller's organization, waited for, and its end
//! turned into the tool's answer. While it waits, a call whose request carries a progress
//! token is told every [`TICK`] where its job stands (`waiting`, `running`, a retry after
//! which error), so a client can show it and keep the request alive.

use std::time::Duration;

use gitfleet_client::{
    Client, EnqueueOptions, ErrorKind, JobError, JobRecord, JobSpec, JobStatus, QueueError,
};
use rmcp::model::{CallToolResult, ProgressNotificationParam, ProgressToken};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::Value;
use tokio::time::Instant;

use crate::catalog::GitTool;
use crate::reply;

/// How often a waiting call reports progress.
pub(crate) const TICK: Duration = Duration::from_secs(1);

pub(crate) struct Call<'a> {
    pub client: &'a Client,
    pub org: &'a str,
    pub tool: &'static GitTool,
    pub wait: Duration,
}

impl Call<'_> {
    pub async fn run(&self, args: Value, context: &RequestContext<RoleServer>) -> CallToolResult {
        let spec = JobSpec::new(self.tool.op.as_str(), args);
        let options = EnqueueOptions {
            org: Some(self.org.to_string()),
            ..Default::default()
        };
        // The client checks the job against the contract for this organization (bad args
        // come back naming the field) and its budget before anything is enqueued.
        let job_id = match self
            .client
            .submit(&Client::route(&spec), &spec, &options)
            .await
        {
            Ok(enqueued) => enqueued.job_id,
            Err(QueueError::Invalid(error)) => return reply::failure(&error),
            Err(e) => return self.unreachable(&e),
        };
        let progress = context.meta.get_progress_token();
        tokio::select! {
            answer = self.wait_for(&job_id, progress, context) => answer,
            // The client gave up on the call; the job goes on.
            () = context.ct.cancelled() => reply::fail(ErrorKind::Timeout, "cancelled by the client"),
        }
    }

    async fn wait_for(
        &self,
        job_id: &str,
        progress: Option<ProgressToken>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        // One blocking wait for the whole call (it holds a Redis connection of its own);
        // the progress notes read the job's record beside it, on the shared connection.
        let wait = self.client.wait(job_id, self.wait);
        tokio::pin!(wait);
        let mut ticker = tokio::time::interval_at(Instant::now() + TICK, TICK);
        // Progress counts the ticks waited (about seconds): it must grow with every note.
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                record = &mut wait => return self.answer(job_id, record),
                _ = ticker.tick(), if progress.is_some() => {
                    let (Some(token), Ok(Some(record))) =
                        (&progress, self.client.job(job_id).await)
                    else {
                        continue;
                    };
                    ticks += 1;
                    let note = ProgressNotificationParam::new(token.clone(), f64::from(ticks))
                        .with_message(progress_message(&record));
                    // A client that cannot take the note still gets the answer.
                    let _ = context.peer.notify_progress(note).await;
                }
            }
        }
    }

    /// The tool's answer from the job's record at the end of the wait.
    fn answer(
        &self,
        job_id: &str,
        record: Result<Option<JobRecord>, QueueError>,
    ) -> CallToolResult {
        let record = match record {
            Ok(Some(record)) => record,
            Ok(None) => {
                return reply::fail(
                    ErrorKind::Internal,
                    format!("job {job_id} is no longer in the queue (its record expired)"),
                );
            }
            Err(e) => return self.unreachable(&e),
        };
        match record.status {
            JobStatus::Done => reply::success(self.tool.op, record.result.unwrap_or(Value::Null)),
            JobStatus::Dead => reply::failure(&record.error.unwrap_or_else(|| {
                JobError::internal(format!("job {job_id} died without an error"))
            })),
            status => reply::fail(
                ErrorKind::Timeout,
                format!(
                    "job {job_id} is still {status} after {} s; it goes on in the fleet, but \
                     this call stopped waiting for it",
                    self.wait.as_secs()
                ),
            ),
        }
    }

    /// The queue could not be reached: the caller is told so in general terms (how Redis
    /// failed is the fleet's business), the log says how.
    fn unreachable(&self, e: &QueueError) -> CallToolResult {
        tracing::error!(tool = self.tool.name, error = %e, "the queue could not be reached");
        reply::fail(
            ErrorKind::Internal,
            "the fleet's queue could not be reached; try again",
        )
    }
}

/// Where a job stands, for a progress note: `running (attempt 2 of 5, after network: ...)`.
fn progress_message(record: &JobRecord) -> String {
    let mut note = format!("{} {}", record.op, record.status);
    if record.attempts > 1 || record.error.is_some() {
        note.push_str(&format!(
            " (attempt {} of {}",
            record.attempts.max(1),
            record.max_attempts
        ));
        if let Some(error) = &record.error {
            note.push_str(&format!(", after {}", error.kind));
        }
        note.push(')');
    }
    note
}
