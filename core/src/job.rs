//! The job contract: what a producer sends and what it gets back.
//!
//! A job is `{"op": "<op>", "args": {...}}`; the queue layer wraps it in an envelope (id,
//! attempts, limits, times, idempotency key) stored in Redis. Failures carry a stable
//! [`ErrorKind`] so retries, dashboards and metrics can group by it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a job asks for: an op and its arguments. This is the JSON a producer enqueues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub op: String,
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl JobSpec {
    pub fn new(op: impl Into<String>, args: Value) -> Self {
        Self {
            op: op.into(),
            args,
        }
    }

    /// Parses a payload as stored in Redis, naming what is wrong when it is not a job.
    pub fn parse(payload: &str) -> Result<Self, JobError> {
        let spec: JobSpec = serde_json::from_str(payload).map_err(|e| {
            JobError::invalid_input(format!("job payload is not a valid job object: {e}"))
        })?;
        spec.check_shape()?;
        Ok(spec)
    }

    /// Checks what any job must satisfy, whatever its op.
    pub fn check_shape(&self) -> Result<(), JobError> {
        if self.op.is_empty() {
            return Err(JobError::invalid_input("op: must not be empty"));
        }
        if !self.args.is_object() {
            return Err(JobError::invalid_input("args: must be a JSON object"));
        }
        Ok(())
    }
}

/// Why a job failed. The set is fixed; it is part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    Auth,
    Network,
    Timeout,
    Conflict,
    SandboxNotFound,
    BudgetExceeded,
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::InvalidInput,
        ErrorKind::Auth,
        ErrorKind::Network,
        ErrorKind::Timeout,
        ErrorKind::Conflict,
        ErrorKind::SandboxNotFound,
        ErrorKind::BudgetExceeded,
        ErrorKind::Internal,
    ];

    /// Kinds that another attempt cannot fix go straight to dead.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Internal
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Auth => "auth",
            ErrorKind::Network => "network",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::SandboxNotFound => "sandbox_not_found",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown error kind '{s}'"))
    }
}

/// A job's failure as stored and reported: `{"kind": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    pub fn sandbox_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::SandboxNotFound, message)
    }
}

/// Where a job is in its life. See `docs/queue.md` for the state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// Everything known about one job, as `gitfleet job <id>` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(with = "rfc3339_micros")]
    pub enqueued_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub error: Option<JobError>,
    pub worker: Option<String>,
}

impl JobRecord {
    /// The object the CLI prints: `result` for a job that is done, `error` once it failed
    /// (a job waiting for a retry shows its last error).
    pub fn to_cli_json(&self) -> Value {
        let mut obj = serde_json::json!({
            "job_id": self.job_id,
            "op": self.op,
            "status": self.status,
            "attempts": self.attempts,
            "enqueued_at": fmt_time(self.enqueued_at),
            "started_at": fmt_time(self.started_at),
            "finished_at": fmt_time(self.finished_at),
        });
        let map = obj.as_object_mut().expect("object literal");
        if let Some(err) = &self.error {
            map.insert(
                "error".into(),
                serde_json::to_value(err).expect("plain data"),
            );
        } else {
            map.insert("result".into(), self.result.clone().unwrap_or(Value::Null));
        }
        if let Some(run_at) = self.run_at.filter(|_| self.status == JobStatus::Delayed) {
            map.insert("run_at".into(), fmt_time(Some(run_at)));
        }
        obj
    }
}

/// RFC 3339 with microseconds, UTC: `2026-11-22T05:24:27.123456Z`.
pub fn fmt_time(t: Option<DateTime<Utc>>) -> Value {
    match t {
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => Value::Null,
    }
}

/// Converts microseconds since the epoch, as the queue's scripts store them.
pub fn time_from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

pub(crate) mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match super::fmt_time(*t) {
            serde_json::Value::String(v) => s.serialize_str(&v),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_what_is_wrong_with_a_payload() {
        assert!(
            JobSpec::parse("{not json")
                .unwrap_err()
                .message
                .contains("not a valid job object")
        );
        assert!(
            JobSpec::parse(r#"{"op":"echo","args":[1]}"#)
                .unwrap_err()
                .message
                .starts_with("args:")
        );
        assert!(
            JobSpec::parse(r#"{"op":"echo","extra":1}"#)
                .unwrap_err()
                .message
                .contains("unknown field")
        );
        let spec = JobSpec::parse(r#"{"op":"echo"}"#).unwrap();
        assert_eq!(spec.args, serde_json::json!({}));
    }

    #[test]
    fn only_transient_kinds_are_retried() {
        let retried: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_retryable())
            .collect();
        assert_eq!(
            retried,
            [ErrorKind::Network, ErrorKind::Timeout, ErrorKind::Internal]
        );
        for k in ErrorKind::ALL {
            assert_eq!(k.as_str().parse::<ErrorKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn times_print_with_microseconds() {
        let t = time_from_micros(1_700_000_000_123_456);
        assert_eq!(fmt_time(t), "2023-11-14T22:13:20.123456Z");
    }
}
