//! Cancelling a job that has not started (`lua/cancel.lua`): out of its ready list or
//! delayed set, finished as `cancelled`, its waiters woken. A running job is not stopped:
//! cancelling one is refused (`conflict`), and so is cancelling a finished one.

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Value};
use serde::{Serialize, Serializer};

use super::inspect::check_job_id;
use super::scripts::CANCEL;
use super::{Queue, QueueError};
use gitfleet_contract::{JobStatus, rfc3339_micros, time_from_micros};

/// A job just cancelled: where it was, and what its final row in the durable record needs
/// (nothing later sees the job again to write it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    /// Where it was: [`JobStatus::Waiting`] (in its queue, or taken by a worker an instant
    /// before, not yet started) or [`JobStatus::Delayed`] (due later, or waiting out a
    /// retry's backoff).
    pub was: JobStatus,
    /// Runs it had before (a retry waiting out its backoff has some), as the queue counts
    /// them: without runs given back unfinished.
    pub attempts: u32,
    /// Runs a stopping worker gave back unfinished (not in `attempts`).
    pub given_back: u32,
    /// 0 for the op's default.
    pub max_attempts: u32,
    #[serde(with = "rfc3339_micros")]
    pub enqueued_at: Option<DateTime<Utc>>,
    /// When it was cancelled, by Redis's clock; its record is kept the result TTL from then.
    #[serde(serialize_with = "micros")]
    pub finished_at: DateTime<Utc>,
    pub org: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub sandbox_id: Option<String>,
}

fn micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    rfc3339_micros::serialize(&Some(*t), s)
}

/// Fields in the script's reply.
const FIELDS: usize = 12;

impl Queue {
    /// Cancels job `id` if it has not started: a `waiting` job leaves its queue, a
    /// `delayed` one its delayed set; it ends `cancelled`, its record kept for the result
    /// TTL (as a done job's), and whoever waits on it ([`Queue::wait`]) returns at once.
    /// With `org`, only a job of that organization is found: another's answers `None`,
    /// exactly as a job that does not exist (or has expired) does.
    ///
    /// A job that is running is refused with [`QueueError::Invalid`] of kind `conflict`,
    /// naming its worker; a job that is done, dead or cancelled likewise ("already ...").
    /// Atomic with the workers' fetch: a job either runs or is cancelled, never both.
    pub async fn cancel(
        &self,
        id: &str,
        org: Option<&str>,
    ) -> Result<Option<Cancelled>, QueueError> {
        check_job_id(id)?;
        let mut conn = self.conn();
        // The script's keys name the job's queue, which only its record knows. A queue
        // never changes; the script checks it is still the record's.
        let queue: Option<String> = conn.hget(self.keys.job(id), "queue").await?;
        let Some(queue) = queue else { return Ok(None) };
        let reply: Value = CANCEL
            .key(self.keys.job(id))
            .key(self.keys.ready(&queue))
            .key(self.keys.delayed(&queue))
            .key(self.keys.cancelled(&queue))
            .key(self.keys.wake(id))
            .arg(id)
            .arg(&queue)
            .arg(self.config.result_ttl.as_secs().max(1))
            .arg(org.unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_script)?;
        match reply {
            Value::Nil | Value::Boolean(false) => Ok(None),
            Value::Array(fields) => parse(id, &fields).map(Some),
            other => Err(QueueError::Protocol(format!(
                "cancel answered {other:?}, not a job or nil"
            ))),
        }
    }
}

fn parse(id: &str, f: &[Value]) -> Result<Cancelled, QueueError> {
    if f.len() != FIELDS {
        return Err(QueueError::Protocol(format!(
            "cancel answered {} fields, not {FIELDS}",
            f.len()
        )));
    }
    let protocol = |e: redis::ParsingError| QueueError::Protocol(format!("cancel: {e}"));
    let text = |v: &Value| -> Result<String, QueueError> {
        redis::from_redis_value_ref(v).map_err(protocol)
    };
    let opt = |v: &Value| -> Result<Option<String>, QueueError> {
        Ok(Some(text(v)?).filter(|s| !s.is_empty()))
    };
    let num =
        |v: &Value| -> Result<i64, QueueError> { redis::from_redis_value_ref(v).map_err(protocol) };
    let was: JobStatus = text(&f[0])?.parse().map_err(QueueError::Protocol)?;
    let enqueued_us = num(&f[5])?;
    let finished_us = num(&f[6])?;
    Ok(Cancelled {
        job_id: id.to_string(),
        op: text(&f[1])?,
        queue: text(&f[2])?,
        was,
        attempts: u32::try_from(num(&f[3])?).unwrap_or(0),
        max_attempts: u32::try_from(num(&f[4])?).unwrap_or(0),
        enqueued_at: time_from_micros(enqueued_us).filter(|_| enqueued_us > 0),
        finished_at: time_from_micros(finished_us).ok_or_else(|| {
            QueueError::Protocol(format!("cancel: {finished_us} is not a time in µs"))
        })?,
        org: opt(&f[7])?,
        agent_id: opt(&f[8])?,
        task_id: opt(&f[9])?,
        sandbox_id: opt(&f[10])?,
        given_back: u32::try_from(num(&f[11])?).unwrap_or(0),
    })
}
