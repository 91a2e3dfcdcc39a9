//! Where a job is in its life: `waiting`, `delayed`, `running`, `done`, `dead`, `cancelled`.

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
    /// Taken out of its queue by a producer before it ran (from `waiting` or `delayed`; a
    /// running job cannot be cancelled). Final: not an error of the job, and never retried.
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order of a job's life.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Waiting,
        JobStatus::Delayed,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Delayed => "delayed",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job will change no more (done, dead or cancelled): what waiters wait for.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Dead | JobStatus::Cancelled
        )
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
            "cancelled" => JobStatus::Cancelled,
            other => return Err(format!("unknown job status '{other}'")),
        })
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_only_the_last_three_are_final() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        let finals: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [JobStatus::Done, JobStatus::Dead, JobStatus::Cancelled]
        );
        assert_eq!(
            "canceled".parse::<JobStatus>(),
            Err("unknown job status 'canceled'".to_string())
        );
    }
}
