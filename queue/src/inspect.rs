//! Reading the queue: one job's record, waiting for a job to finish (done, dead or
//! cancelled), counts per queue, and retrying a dead job by hand.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde::Serialize;

use redis::streams::{StreamReadOptions, StreamReadReply};

use super::scripts::{REGISTER_WAITER, RETRY_DEAD, STATS, WATCH};
use super::{Blocking, Queue, QueueError};
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
        let mut blocking: Option<Blocking> = None;
        let mut retried = false;
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
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match record {
                None => Some(None),
                Some(r) if r.status.is_final() || left.is_zero() => Some(Some(r)),
                Some(_) => None,
            };
            if let Some(answer) = answer {
                if let Some(b) = blocking {
                    b.reuse();
                }
                return Ok(answer);
            }
            let b = match &mut blocking {
                Some(b) => b,
                None => blocking.insert(self.blocking().await?),
            };
            let wake = self.keys.wake(id);
            // BLMOVE from a list to itself rotates it: the token stays for other waiters.
            let moved: Result<Option<String>, _> = redis::cmd("BLMOVE")
                .arg(&wake)
                .arg(&wake)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(left.as_secs_f64().max(0.01))
                .query_async(b.conn())
                .await;
            if let Err(e) = moved {
                let stale = b.reused && !retried;
                blocking = None;
                if !stale {
                    return Err(e.into());
                }
                // A kept connection gone stale: once more, on a new one.
                retried = true;
            }
        }
    }

    /// Starts watching job `id`: from now on every change of its state is logged for this
    /// watcher (and any other), so none is missed however fast they follow each other.
    /// Answers the job's record as it is once the watch is set, and the watch, whose
    /// [`JobWatch::changes`] gives each change after that record; `None` when there is no
    /// such job.
    pub async fn watch(&self, id: &str) -> Result<Option<(JobRecord, JobWatch)>, QueueError> {
        check_job_id(id)?;
        let mut conn = self.conn();
        let events = self.keys.events(id);
        let last: Option<String> = WATCH
            .key(self.keys.job(id))
            .key(&events)
            .invoke_async(&mut conn)
            .await?;
        let Some(last) = last else {
            return Ok(None);
        };
        // Read after the flag is set: a change between the two is both in this record and
        // in the log, and the log's copy is told apart by its state (see `JobWatch`).
        let Some(record) = self.job(id).await? else {
            return Ok(None);
        };
        let watch = JobWatch {
            queue: self.clone(),
            events,
            last,
            blocking: None,
        };
        Ok(Some((record, watch)))
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

/// A watch on one job's changes of state ([`Queue::watch`]).
pub struct JobWatch {
    queue: Queue,
    events: String,
    /// The id of the last log entry given out.
    last: String,
    /// The connection for the blocking reads, taken at the first; given back to the
    /// queue's idle ones when the watch ends between two reads.
    blocking: Option<Blocking>,
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        if let Some(b) = self.blocking.take() {
            b.reuse();
        }
    }
}

/// One change of a job's state: its state fields just after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    pub status: JobStatus,
    pub attempts: u32,
    pub worker: Option<String>,
    pub given_back: u32,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl JobChange {
    /// `record` as it was just after this change: its state fields from the change, the rest
    /// as the record has them (a result only in a final state).
    pub fn applied_to(&self, record: &JobRecord) -> JobRecord {
        let mut r = record.clone();
        r.status = self.status;
        r.attempts = self.attempts;
        r.worker = self.worker.clone();
        r.given_back = self.given_back;
        r.started_at = self.started_at;
        r.finished_at = self.finished_at;
        r.run_at = self.run_at;
        if !self.status.is_final() {
            r.result = None;
        }
        r
    }
}

/// Changes a watch reads at most at once.
const CHANGES_MAX: usize = 64;

impl JobWatch {
    /// The changes since the last call (oldest first), waiting up to `timeout` for the
    /// first; empty when none came.
    pub async fn changes(&mut self, timeout: Duration) -> Result<Vec<JobChange>, QueueError> {
        let opts = StreamReadOptions::default()
            .block(timeout.as_millis().max(1) as usize)
            .count(CHANGES_MAX);
        let mut retried = false;
        let reply: Option<StreamReadReply> = loop {
            // Out of `self` while the read blocks: a read cut off drops the connection with
            // it, and only one that answered goes back (see [`Blocking`]).
            let mut b = match self.blocking.take() {
                Some(b) => b,
                None => self.queue.blocking().await?,
            };
            let read = b
                .conn()
                .xread_options(&[&self.events], &[&self.last], &opts)
                .await;
            match read {
                Ok(r) => {
                    self.blocking = Some(b);
                    break r;
                }
                // A kept connection gone stale: once more, on a new one.
                Err(_) if b.reused && !retried => retried = true,
                Err(e) => return Err(e.into()),
            }
        };
        let mut changes = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            self.last = entry.id.clone();
            let text = |name: &str| -> Option<String> {
                entry
                    .map
                    .get(name)
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .filter(|v| !v.is_empty())
            };
            let int = |name: &str| text(name).and_then(|v| v.parse::<i64>().ok());
            let time = |name: &str| int(name).and_then(time_from_micros);
            let Some(status) = text("status").and_then(|s| s.parse::<JobStatus>().ok()) else {
                continue;
            };
            changes.push(JobChange {
                status,
                attempts: int("attempts").unwrap_or(0).max(0) as u32,
                worker: text("worker"),
                given_back: int("given_back").unwrap_or(0).max(0) as u32,
                started_at: time("started_at"),
                finished_at: time("finished_at"),
                run_at: time("run_at"),
            });
        }
        Ok(changes)
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
