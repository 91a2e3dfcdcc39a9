//! Everything known about one job, as producers read it back, and the one way times are
//! printed (RFC 3339 with microseconds, UTC).

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::JobError;
use crate::status::JobStatus;

/// Everything known about one job, as `gitfleet job <id>` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobRecord {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    /// The organization it runs for (its envelope's), if any.
    #[serde(default)]
    pub org: Option<String>,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub enqueued_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<Value>,
    pub error: Option<JobError>,
    pub worker: Option<String>,
    /// Runs given back unfinished (the worker stopped while they ran); they do not count
    /// as attempts.
    #[serde(default)]
    pub given_back: u32,
}

impl JobRecord {
    /// The object the CLI prints: `result` for a job that is done, `error` once it failed
    /// (a job waiting for a retry shows its last error), and `given_back` when a run of it
    /// was given back unfinished.
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
        if let Some(org) = &self.org {
            map.insert("org".into(), org.clone().into());
        }
        if self.given_back > 0 {
            map.insert("given_back".into(), self.given_back.into());
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

pub mod rfc3339_micros {
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
    fn the_record_schema_gives_times_as_date_times_and_errors_their_kinds() {
        let schema = serde_json::to_value(schemars::schema_for!(JobRecord)).unwrap();
        let text = schema.to_string();
        assert_eq!(
            schema["properties"]["enqueued_at"]["format"], "date-time",
            "{text}"
        );
        for kind in crate::ErrorKind::ALL {
            assert!(
                text.contains(&format!("\"{}\"", kind.as_str())),
                "{kind}: {text}"
            );
        }
        for status in crate::JobStatus::ALL {
            assert!(text.contains(&format!("\"{status}\"")), "{status}: {text}");
        }
    }

    #[test]
    fn times_print_with_microseconds() {
        let t = time_from_micros(1_700_000_000_123_456);
        assert_eq!(fmt_time(t), "2023-11-14T22:13:20.123456Z");
    }
}
