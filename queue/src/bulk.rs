//! By-hand actions on dead and delayed jobs: retry a dead job, delete a dead or delayed
//! one, run a delayed one now; one job, or every job matching a filter.
//!
//! A bulk action is two steps, each in chunks of [`CHUNK`] so no script call holds Redis
//! for long (`lua/bulk.lua`): a scan of the queues' dead or delayed sets that collects the
//! matching ids (what a dry run counts), then the action on those ids, a chunk a call. Each
//! job is acted on only if it still matches and is still in the state the action needs when
//! its chunk runs: one that changed state in between (a delayed job that came due and
//! started, a dead job someone else retried or deleted) is skipped and counted as such, and
//! a job that came to match after the scan is not acted on. A job is never acted on twice.

use std::collections::HashSet;

use redis::Value;
use serde::{Deserialize, Serialize};

use super::inspect::check_job_id;
use super::scripts::BULK;
use super::{CHUNK, Queue, QueueError};
use gitfleet_contract::{JobError, JobStatus, time_from_micros};

/// What to do to the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// A dead job goes back to its queue with a fresh set of attempts.
    Retry,
    /// A dead or delayed job is removed from Redis (its record and its set).
    Delete,
    /// A delayed job (due later, or waiting out a retry's backoff) joins its queue now.
    RunNow,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Retry => "retry",
            BulkAction::Delete => "delete",
            BulkAction::RunNow => "run_now",
        }
    }

    /// Whether the action applies to jobs in `state` (dead or delayed).
    pub fn applies_to(self, state: JobStatus) -> bool {
        matches!(
            (self, state),
            (BulkAction::Retry, JobStatus::Dead)
                | (BulkAction::Delete, JobStatus::Dead | JobStatus::Delayed)
                | (BulkAction::RunNow, JobStatus::Delayed)
        )
    }
}

/// Which jobs a bulk action is for. Every field set narrows it.
#[derive(Debug, Clone)]
pub struct BulkFilter {
    /// [`JobStatus::Dead`] or [`JobStatus::Delayed`].
    pub state: JobStatus,
    /// One queue; `None`: every queue that has had a job.
    pub queue: Option<String>,
    pub op: Option<String>,
    /// One organization's jobs; `None`: every organization's (and jobs of none).
    pub org: Option<String>,
    /// Enqueued at or after this time (µs since the epoch, Redis's clock).
    pub enqueued_from_us: Option<i64>,
    /// Enqueued before this time (µs).
    pub enqueued_before_us: Option<i64>,
}

/// A job a scan found: its id and queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Matched {
    pub job_id: String,
    pub queue: String,
}

/// A job an action was done to, with what its record said, for its row in Postgres.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    pub org: Option<String>,
    pub attempts: u32,
    pub given_back: u32,
    pub enqueued_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its last run's error (a dead job's, or a retry's).
    pub error: Option<JobError>,
}

/// What an action did: the jobs acted on, and how many of those it was given were skipped
/// (no longer in the state it needs, or no longer matching).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActReport {
    pub acted: Vec<Acted>,
    pub skipped: u64,
}

impl Queue {
    /// The jobs matching `filter`, oldest first per queue (by time of death, or due time),
    /// at most `max` (a scan stops there; `Ok` with `max` ids means there may be more).
    /// Reads in chunks; changes nothing.
    pub async fn matching(
        &self,
        filter: &BulkFilter,
        max: usize,
    ) -> Result<Vec<Matched>, QueueError> {
        let set_status = set_status(filter.state)?;
        let queues: Vec<String> = match &filter.queue {
            Some(q) => vec![q.clone()],
            None => {
                let mut all: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.keys.queues())
                    .query_async(&mut self.conn())
                    .await?;
                all.sort();
                all
            }
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for queue in queues {
            let set = self.state_set(filter.state, &queue);
            let (mut score, mut skip) = ("-inf".to_string(), 0u64);
            loop {
                let reply: (Vec<String>, String, u64) = self
                    .bulk_call(&set, &queue, "scan", set_status, filter)
                    .arg(&score)
                    .arg(skip)
                    .arg(CHUNK)
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(QueueError::from_script)?;
                for id in reply.0 {
                    // A member may be read twice if the set changed between chunks.
                    if seen.insert(id.clone()) {
                        out.push(Matched {
                            job_id: id,
                            queue: queue.clone(),
                        });
                        if out.len() >= max {
                            return Ok(out);
                        }
                    }
                }
                if reply.1.is_empty() {
                    break;
                }
                (score, skip) = (reply.1, reply.2);
            }
        }
        Ok(out)
    }

    /// Does `action` to `jobs` (found by [`Queue::matching`] with the same `filter`), a
    /// chunk per script call; each job only if it still matches `filter` then.
    pub async fn act(
        &self,
        action: BulkAction,
        filter: &BulkFilter,
        jobs: &[Matched],
    ) -> Result<ActReport, QueueError> {
        let set_status = set_status(filter.state)?;
        if !action.applies_to(filter.state) {
            return Err(QueueError::invalid(format!(
                "action: {} does not apply to {} jobs",
                action.as_str(),
                filter.state
            )));
        }
        let mut by_queue: Vec<(&str, Vec<&str>)> = Vec::new();
        for m in jobs {
            match by_queue.iter_mut().find(|(q, _)| *q == m.queue) {
                Some((_, ids)) => ids.push(&m.job_id),
                None => by_queue.push((&m.queue, vec![&m.job_id])),
            }
        }
        let mut report = ActReport::default();
        for (queue, ids) in by_queue {
            let set = self.state_set(filter.state, queue);
            for chunk in ids.chunks(CHUNK) {
                let mut call = self.bulk_call(&set, queue, "act", set_status, filter);
                call.arg(action.as_str()).arg(queue);
                for id in chunk {
                    call.arg(*id);
                }
                let (flat, skipped): (Vec<Value>, u64) = call
                    .invoke_async(&mut self.conn())
                    .await
                    .map_err(QueueError::from_script)?;
                report.skipped += skipped;
                for f in flat.chunks(7) {
                    report.acted.push(parse_acted(queue, f)?);
                }
            }
        }
        Ok(report)
    }

    /// [`BulkAction`] on one job, for organization `org` (`None`: any): `Ok(None)` when
    /// there is no such job (or it is another organization's); a job in a state the action
    /// does not take is refused with a `conflict` naming its state.
    pub async fn act_on(
        &self,
        action: BulkAction,
        id: &str,
        org: Option<&str>,
    ) -> Result<Option<Acted>, QueueError> {
        check_job_id(id)?;
        let (status, queue, owner): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.job(id))
                .arg("status")
                .arg("queue")
                .arg("org")
                .query_async(&mut self.conn())
                .await?;
        let (Some(status), Some(queue)) = (status, queue) else {
            return Ok(None);
        };
        if org.is_some_and(|o| owner.as_deref() != Some(o)) {
            return Ok(None);
        }
        let state: JobStatus = status.parse().map_err(QueueError::Protocol)?;
        let conflict = |state: &str| {
            QueueError::Invalid(JobError::new(
                gitfleet_contract::ErrorKind::Conflict,
                format!(
                    "job {id} is {state}; {} takes {} jobs",
                    action.as_str(),
                    match action {
                        BulkAction::Retry => "dead",
                        BulkAction::Delete => "dead or delayed",
                        BulkAction::RunNow => "delayed",
                    }
                ),
            ))
        };
        if !action.applies_to(state) {
            return Err(conflict(&status));
        }
        let filter = BulkFilter {
            state,
            queue: Some(queue.clone()),
            op: None,
            org: org.map(str::to_string),
            enqueued_from_us: None,
            enqueued_before_us: None,
        };
        let one = [Matched {
            job_id: id.to_string(),
            queue,
        }];
        let mut report = self.act(action, &filter, &one).await?;
        match report.acted.pop() {
            Some(a) => Ok(Some(a)),
            // It changed state between the read and the script: say what it is now.
            None => match self.job(id).await? {
                Some(r) => Err(conflict(r.status.as_str())),
                None => Ok(None),
            },
        }
    }

    fn state_set(&self, state: JobStatus, queue: &str) -> String {
        if state == JobStatus::Dead {
            self.keys.dead(queue)
        } else {
            self.keys.delayed(queue)
        }
    }

    /// The script call with the arguments both modes share.
    fn bulk_call(
        &self,
        set: &str,
        queue: &str,
        mode: &str,
        status: &str,
        f: &BulkFilter,
    ) -> redis::ScriptInvocation<'static> {
        let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let mut call = BULK.prepare_invoke();
        call.key(set)
            .key(self.keys.ready(queue))
            .arg(self.keys.prefix())
            .arg(mode)
            .arg(status)
            .arg(f.op.as_deref().unwrap_or(""))
            .arg(f.org.as_deref().unwrap_or(""))
            .arg(opt(f.enqueued_from_us))
            .arg(opt(f.enqueued_before_us));
        call
    }
}

fn set_status(state: JobStatus) -> Result<&'static str, QueueError> {
    match state {
        JobStatus::Dead => Ok("dead"),
        JobStatus::Delayed => Ok("delayed"),
        other => Err(QueueError::invalid(format!(
            "state: {other} jobs take no bulk action (dead or delayed)"
        ))),
    }
}

fn parse_acted(queue: &str, f: &[Value]) -> Result<Acted, QueueError> {
    let text = |v: &Value| -> Result<String, QueueError> {
        redis::from_redis_value_ref(v).map_err(|e| QueueError::Protocol(format!("bulk: {e}")))
    };
    let opt = |v: &Value| -> Result<Option<String>, QueueError> {
        Ok(Some(text(v)?).filter(|s| !s.is_empty()))
    };
    if f.len() != 7 {
        return Err(QueueError::Protocol(format!(
            "bulk answered {} fields for a job, not 7",
            f.len()
        )));
    }
    let num = |v: &Value| -> Result<i64, QueueError> { Ok(text(v)?.parse::<i64>().unwrap_or(0)) };
    let error = match opt(&f[6])? {
        Some(e) => serde_json::from_str::<JobError>(&e).ok(),
        None => None,
    };
    Ok(Acted {
        job_id: text(&f[0])?,
        op: text(&f[1])?,
        queue: queue.to_string(),
        org: opt(&f[2])?,
        attempts: u32::try_from(num(&f[3])?).unwrap_or(0),
        given_back: u32::try_from(num(&f[4])?).unwrap_or(0),
        enqueued_at: opt(&f[5])?
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(time_from_micros),
        error,
    })
}
