//! Where a job is in its life: `waiting`, `delayed`, `running`, `done`, `dead`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a job is in its life. See `docs/queue.md` for the state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// In its queue's ready list, to be taken by the next free worker.
    Waiting,
    /// Due later: a `run_at` in the future, or a retry waiting out its backoff.
    Delayed,
    /// Held by a worker.
    Running,
    /// Finished with a result.
    Done,
    /// Failed for good (a non-retryable kind, or out of attempts); can be retried by hand.
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Delayed => "delayed",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Dead)
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "waiting" => JobStatus::Waiting,
            "delayed" => JobStatus::Delayed,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            "dead" => JobStatus::Dead,
            other => return Err(format!("unknown job status '{other}'")),
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
