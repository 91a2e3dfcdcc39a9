//! Reading the queue: one job's record, waiting for a job to finish (done, dead or
//! cancelled), counts per queue, and retrying a dead job by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde::Serialize;

use super::scripts::{REGISTER_WAITER, RETRY_DEAD, STATS};
use super::{Queue, QueueError};
use gitfleet_contract::{JobError, JobRecord, JobSpec, JobStatus, time_from_micros};

/// Counts for one queue, as `gitfleet queues` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct QueueStats {
    pub queue: String,
    pub waiting: u64,
    pub running: u64,
    pub delayed: u64,
    /// Finished jobs whose records are still kept.
    pub done: u64,
    pub dead: u64,
    /// Jobs cancelled before they ran whose records are still kept (the result TTL).
    pub cancelled: u64,
}

impl Queue {
    /// The record of job `id`, or `None` when there is no such job (or it expired).
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        check_job_id(id)?;
        let mut conn = self.conn();
        let fields: HashMap<String, String> = conn.hgetall(self.keys.job(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(record_from_fields(id, &fields)?))
    }

    /// The job `id` as it was enqueued (its op and args), while its record is kept; `None`
    /// when there is no such job (or it expired), or its payload is not a job.
    pub async fn job_spec(&self, id: &str) -> Result<Option<JobSpec>, QueueError> {
        check_job_id(id)?;
        let mut conn = self.conn();
        let payload: Option<String> = conn.hget(self.keys.job(id), "payload").await?;
        Ok(payload.and_then(|p| JobSpec::parse(&p).ok()))
    }

    /// Waits until job `id` is done, dead or cancelled, or `timeout` passes, and returns its
    /// record as it then is. Blocks on Redis (no polling): the finishing worker (or the
    /// canceller) pushes a token to the job's wake list, which waiters rotate so that every
    /// waiter sees it.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<JobRecord>, QueueError> {
        let deadline = Instant::now() + timeout;
        let mut blocking = None;
        loop {
            let mut conn = self.conn();
            // Register as a waiter before reading the status: a worker finishing in between
            // sees the flag, so the wake-up cannot be missed.
            let exists: i64 = REGISTER_WAITER
                .key(self.keys.job(id))
                .invoke_async(&mut conn)
                .await?;
            let record = if exists == 1 {
                self.job(id).await?
            } else {
                None
            };
            let Some(record) = record else {
                return Ok(None);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if record.status.is_final() || left.is_zero() {
                return Ok(Some(record));
            }
            if blocking.is_none() {
                blocking = Some(self.blocking_connection().await?);
            }
            let wake = self.keys.wake(id);
            let conn = blocking.as_mut().expect("set above");
            // BLMOVE from a list to itself rotates it: the token stays for other waiters.
            let _: Option<String> = redis::cmd("BLMOVE")
                .arg(&wake)
                .arg(&wake)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(left.as_secs_f64().max(0.01))
                .query_async(conn)
                .await?;
        }
    }

    /// Counts for every queue that has had a job.
    pub async fn stats(&self) -> Result<Vec<QueueStats>, QueueError> {
        let mut conn = self.conn();
        let flat: Vec<redis::Value> = STATS
            .key(self.keys.queues())
            .key(self.keys.workers())
            .arg(self.keys.prefix())
            .arg(self.config.result_ttl.as_secs())
            .arg(self.config.dead_ttl.as_secs())
            .invoke_async(&mut conn)
            .await?;
        flat.chunks(7)
            .map(|c| {
                let num = |v: &redis::Value| -> Result<u64, QueueError> {
                    redis::from_redis_value_ref(v).map_err(|e| QueueError::Protocol(e.to_string()))
                };
                Ok(QueueStats {
                    queue: redis::from_redis_value_ref(&c[0])
                        .map_err(|e| QueueError::Protocol(e.to_string()))?,
                    waiting: num(&c[1])?,
                    running: num(&c[2])?,
                    delayed: num(&c[3])?,
                    done: num(&c[4])?,
                    dead: num(&c[5])?,
                    cancelled: num(&c[6])?,
                })
            })
            .collect()
    }

    /// Sends dead job `id` back to its queue with a fresh set of attempts.
    pub async fn retry_dead(&self, id: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let _queue: String = RETRY_DEAD
            .key(self.keys.job(id))
            .arg(self.keys.prefix())
            .arg(id)
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_script)?;
        Ok(())
    }
}

/// Refuses what cannot be a job id before it is built into a key name.
pub(crate) fn check_job_id(id: &str) -> Result<(), QueueError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(QueueError::invalid(format!(
            "job id {id:?}: not a job id (ids are ULIDs)"
        )));
    }
    Ok(())
}

fn record_from_fields(id: &str, f: &HashMap<String, String>) -> Result<JobRecord, QueueError> {
    let int = |name: &str| f.get(name).and_then(|v| v.parse::<i64>().ok());
    let time = |name: &str| int(name).and_then(time_from_micros);
    let status: JobStatus = f
        .get("status")
        .map(|s| s.parse())
        .transpose()
        .map_err(QueueError::Protocol)?
        .ok_or_else(|| QueueError::Protocol(format!("job {id} has no status")))?;
    let op = f
        .get("op")
        .cloned()
        .or_else(|| {
            f.get("payload")
                .and_then(|p| JobSpec::parse(p).ok())
                .map(|s| s.op)
        })
        .unwrap_or_default();
    let error = match f.get("error") {
        Some(e) => Some(serde_json::from_str::<JobError>(e).map_err(|err| {
            QueueError::Protocol(format!("job {id} has an unreadable error: {err}"))
        })?),
        None => None,
    };
    let result = match f.get("result") {
        Some(r) => Some(serde_json::from_str(r).map_err(|err| {
            QueueError::Protocol(format!("job {id} has an unreadable result: {err}"))
        })?),
        None => None,
    };
    Ok(JobRecord {
        job_id: id.to_string(),
        op,
        queue: f.get("queue").cloned().unwrap_or_default(),
        org: f.get("org").cloned(),
        status,
        attempts: int("attempts").unwrap_or(0).max(0) as u32,
        max_attempts: int("max_attempts").unwrap_or(0).max(0) as u32,
        enqueued_at: time("enqueued_at"),
        run_at: time("run_at"),
        started_at: time("started_at"),
        finished_at: time("finished_at"),
        result,
        error,
        worker: f.get("worker").cloned(),
        given_back: int("given_back").unwrap_or(0).max(0) as u32,
    })
}
