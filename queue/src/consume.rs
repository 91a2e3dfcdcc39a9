//! Consuming: how a worker takes, finishes, delays and gives back jobs, keeps its heartbeat,
//! and recovers the jobs of workers that died.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Value};
use serde_json::Value as Json;

use super::scripts::{FETCH, FINISH, GIVE_BACK, HEARTBEAT, PROMOTE, REAP};
use super::{CHUNK, Queue, QueueError};
use gitfleet_contract::JobError;

/// A job handed to a worker: it is in the worker's held list and marked running.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub queue: String,
    /// The job as enqueued (`{"op", "args"}`), unparsed: parsing is the worker's first step,
    /// and a payload that does not parse fails the job, not the worker.
    pub payload: String,
    /// Runs started so far, this one included.
    pub attempts: u32,
    /// Runs allowed, 0 for the op's default.
    pub max_attempts: u32,
    /// Time allowed for one run in ms, 0 for the op's default.
    pub timeout_ms: u64,
    pub enqueued_at_us: i64,
    /// Earlier runs given back unfinished (a worker stopping): they do not count as
    /// attempts, but one of them may have done the job's work before it was cut off.
    pub given_back: u32,
    /// The organization the job runs for (its envelope's, set by the producer's identity).
    pub org: Option<String>,
}

/// How one run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done(Json),
    /// Failed, to be run again after `delay`.
    Retry {
        error: JobError,
        delay: Duration,
    },
    Dead(JobError),
}

/// One run's outcome, to be acknowledged.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    pub outcome: Outcome,
}

/// What a worker's beat learned from Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beat {
    /// The worker is asked to drain (`Queue::drain_worker`), and not asked to undrain since.
    pub drain_requested: bool,
}

/// What recovering from dead workers did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    pub workers: u64,
    /// Jobs the dead workers held, back in their queues.
    pub requeued: u64,
    /// Jobs waiting in the dead workers' own queues, answered `sandbox_not_found`.
    pub answered: u64,
    /// Those jobs, for whoever reaped to write their final rows in the durable record
    /// (Redis has answered them; nothing else will record them).
    pub jobs: Vec<AnsweredJob>,
}

/// A job the queue answered `sandbox_not_found` (dead) without running it: it waited in the
/// own queue of a worker that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredJob {
    pub id: String,
    pub op: String,
    pub queue: String,
    /// Runs started before (a job waiting out a retry has some).
    pub attempts: u32,
    /// 0 for the op's default.
    pub max_attempts: u32,
    pub enqueued_at_us: i64,
    pub finished_at_us: i64,
    /// Its error (`sandbox_not_found`), as Redis recorded it; not redacted.
    pub error: JobError,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub sandbox_id: Option<String>,
}

/// Fields per job in the reap script's reply.
const ANSWERED_FIELDS: usize = 12;

fn parse_answered(flat: &[Value]) -> Result<Vec<AnsweredJob>, QueueError> {
    if !flat.len().is_multiple_of(ANSWERED_FIELDS) {
        return Err(QueueError::Protocol(format!(
            "reap listed {} fields, not a multiple of {ANSWERED_FIELDS}",
            flat.len()
        )));
    }
    let parse = |e: redis::ParsingError| QueueError::Protocol(e.to_string());
    let text =
        |v: &Value| -> Result<String, QueueError> { redis::from_redis_value_ref(v).map_err(parse) };
    let opt = |v: &Value| -> Result<Option<String>, QueueError> {
        Ok(Some(text(v)?).filter(|s| !s.is_empty()))
    };
    let num = |v: &Value| -> Result<i64, QueueError> {
        if let Ok(n) = redis::from_redis_value_ref::<i64>(v) {
            return Ok(n);
        }
        let s = text(v)?;
        if s.is_empty() {
            return Ok(0);
        }
        s.parse::<i64>()
            .or_else(|_| s.parse::<f64>().map(|f| f as i64))
            .map_err(|e| QueueError::Protocol(format!("reap: {s:?} is not a number: {e}")))
    };
    flat.chunks(ANSWERED_FIELDS)
        .map(|c| {
            Ok(AnsweredJob {
                id: text(&c[0])?,
                op: text(&c[1])?,
                queue: text(&c[2])?,
                attempts: u32::try_from(num(&c[3])?).unwrap_or(0),
                max_attempts: u32::try_from(num(&c[4])?).unwrap_or(0),
                enqueued_at_us: num(&c[5])?,
                finished_at_us: num(&c[6])?,
                error: JobError::sandbox_not_found(text(&c[7])?),
                org_id: opt(&c[8])?,
                agent_id: opt(&c[9])?,
                task_id: opt(&c[10])?,
                sandbox_id: opt(&c[11])?,
            })
        })
        .collect()
}

impl Queue {
    /// Blocks up to `timeout` for a job on `queue`, moving its id into `worker`'s held list.
    /// Uses `conn` (a connection of its own: a blocking command would stall a shared one).
    pub async fn take_blocking(
        &self,
        conn: &mut MultiplexedConnection,
        queue: &str,
        worker: &str,
        timeout: Duration,
    ) -> Result<Option<String>, QueueError> {
        Ok(redis::cmd("BLMOVE")
            .arg(self.keys.ready(queue))
            .arg(self.keys.held(worker))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await?)
    }

    /// Opens a connection for [`Queue::take_blocking`].
    pub async fn take_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        self.blocking_connection().await
    }

    /// Starts `first` (already held) and takes up to `more` further jobs from `queue`
    /// without blocking, all in one round trip.
    pub async fn start(
        &self,
        queue: &str,
        worker: &str,
        first: Option<&str>,
        more: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut conn = self.conn();
        let flat: Vec<Value> = FETCH
            .key(self.keys.ready(queue))
            .key(self.keys.held(worker))
            .key(self.keys.workers())
            .arg(self.keys.prefix())
            .arg(worker)
            .arg(first.unwrap_or(""))
            .arg(more)
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_script)?;
        let parse = |e: redis::ParsingError| QueueError::Protocol(e.to_string());
        flat.chunks(8)
            .map(|c| {
                Ok(Delivery {
                    id: redis::from_redis_value_ref(&c[0]).map_err(parse)?,
                    queue: queue.to_string(),
                    payload: redis::from_redis_value_ref(&c[1]).map_err(parse)?,
                    attempts: redis::from_redis_value_ref(&c[2]).map_err(parse)?,
                    max_attempts: redis::from_redis_value_ref(&c[3]).map_err(parse)?,
                    timeout_ms: redis::from_redis_value_ref(&c[4]).map_err(parse)?,
                    enqueued_at_us: redis::from_redis_value_ref(&c[5]).map_err(parse)?,
                    given_back: redis::from_redis_value_ref(&c[6]).map_err(parse)?,
                    org: Some(redis::from_redis_value_ref::<String>(&c[7]).map_err(parse)?)
                        .filter(|o| !o.is_empty()),
                })
            })
            .collect()
    }

    /// Acknowledges finished runs of `worker`'s jobs: results kept, retries scheduled,
    /// dead jobs recorded, waiters woken; each id leaves the held list. A worker that was
    /// declared dead records nothing ([`QueueError::Fenced`]).
    pub async fn finish(&self, worker: &str, batch: &[Finished]) -> Result<u64, QueueError> {
        let mut conn = self.conn();
        let mut recorded = 0;
        for chunk in batch.chunks(CHUNK) {
            let mut inv = FINISH.key(self.keys.held(worker));
            inv.key(self.keys.workers());
            inv.arg(self.keys.prefix())
                .arg(worker)
                .arg(self.config.result_ttl.as_secs().max(1))
                .arg(self.config.dead_ttl.as_secs().max(1));
            for f in chunk {
                let (kind, data, delay) = match &f.outcome {
                    Outcome::Done(v) => ("done", v.to_string(), 0),
                    Outcome::Retry { error, delay } => {
                        ("retry", error_json(error), delay.as_millis() as u64)
                    }
                    Outcome::Dead(error) => ("dead", error_json(error), 0),
                };
                inv.arg(&f.id).arg(kind).arg(data).arg(delay);
            }
            let n: u64 = inv
                .invoke_async(&mut conn)
                .await
                .map_err(QueueError::from_script)?;
            recorded += n;
        }
        Ok(recorded)
    }

    /// Moves every due job of `queue` from its delayed set to its ready list, a bounded
    /// chunk per call. Returns how long until the next delayed job is due, if any.
    pub async fn promote_due(&self, queue: &str) -> Result<Option<Duration>, QueueError> {
        let mut conn = self.conn();
        loop {
            let (moved, wait_ms): (usize, i64) = PROMOTE
                .key(self.keys.delayed(queue))
                .key(self.keys.ready(queue))
                .arg(self.keys.prefix())
                .arg(CHUNK)
                .invoke_async(&mut conn)
                .await?;
            if moved < CHUNK {
                return Ok((wait_ms >= 0).then(|| Duration::from_millis(wait_ms as u64)));
            }
        }
    }

    /// Registers `worker` (its first heartbeat) with its description. Returns true when it
    /// was not listed before.
    pub async fn heartbeat(
        &self,
        worker: &str,
        info: &[(&str, String)],
    ) -> Result<bool, QueueError> {
        let (new, _) = self.beat_as(worker, "register", info).await?;
        Ok(new == 1)
    }

    /// A registered worker's later heartbeat. It never lists the worker again: once the
    /// worker has been declared dead (recovery has begun, or is done), the beat fails with
    /// [`QueueError::Fenced`] and the worker must stop serving. Answers whether the worker
    /// is asked to drain.
    pub async fn beat(&self, worker: &str, info: &[(&str, String)]) -> Result<Beat, QueueError> {
        let (_, drain) = self.beat_as(worker, "beat", info).await?;
        Ok(Beat {
            drain_requested: !drain.is_empty(),
        })
    }

    async fn beat_as(
        &self,
        worker: &str,
        mode: &str,
        info: &[(&str, String)],
    ) -> Result<(i64, String), QueueError> {
        let mut conn = self.conn();
        let mut inv = HEARTBEAT.key(self.keys.workers());
        inv.key(self.keys.worker_info(worker)).arg(worker).arg(mode);
        for (k, v) in info {
            inv.arg(*k).arg(v);
        }
        inv.invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_script)
    }

    /// Whether `worker` is registered (has a heartbeat, has not left and has not been
    /// declared dead: recovery marks a dead worker with score 0 until it is done).
    pub async fn is_worker_alive(&self, worker: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn();
        let score: Option<f64> = conn.zscore(self.keys.workers(), worker).await?;
        Ok(score.is_some_and(|s| s > 0.0))
    }

    /// The registered workers and how long ago each last beat (by Redis's clock), most
    /// recent first. A worker silent longer than the dead-after time is still listed until
    /// someone reaps it.
    pub async fn live_workers(&self) -> Result<Vec<(String, Duration)>, QueueError> {
        let mut conn = self.conn();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let rows: Vec<(String, f64)> = conn
            .zrevrange_withscores(self.keys.workers(), 0, -1)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(w, beat)| {
                let ago = now_ms.saturating_sub(beat.max(0.0) as u64);
                (w, Duration::from_millis(ago))
            })
            .collect())
    }

    /// Recovers from every worker silent for longer than `dead_after`: its held jobs go back
    /// to the front of their queues, jobs in its own queue are answered `sandbox_not_found`
    /// (and listed in the report, each once: the caller records them). Safe to run from many
    /// workers at once.
    pub async fn reap_dead_workers(&self, dead_after: Duration) -> Result<ReapReport, QueueError> {
        let mut conn = self.conn();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now_ms = secs * 1000 + micros / 1000;
        let cutoff = now_ms.saturating_sub(dead_after.as_millis() as u64);
        let dead: Vec<String> = conn
            .zrangebyscore(self.keys.workers(), "-inf", cutoff)
            .await?;
        let mut report = ReapReport::default();
        for worker in dead {
            let r = match self
                .reap_worker(&worker, dead_after.as_millis().max(1) as u64, "leave")
                .await
            {
                Ok(r) => r,
                // What was answered so far must reach the caller, to be recorded; the rest
                // waits for the next round.
                Err(e) if !report.jobs.is_empty() => {
                    tracing::warn!(error = %e, "recovery cut short; the next round goes on");
                    break;
                }
                Err(e) => return Err(e),
            };
            report.workers += 1;
            report.requeued += r.requeued;
            report.answered += r.answered;
            report.jobs.extend(r.jobs);
        }
        Ok(report)
    }

    /// A worker leaving for good: whatever it still holds goes back to its queues, its own
    /// queue is answered `sandbox_not_found`, and it is deregistered.
    pub async fn leave(&self, worker: &str) -> Result<ReapReport, QueueError> {
        self.requeue_held(worker).await?;
        let mut r = self.reap_worker(worker, 0, "leave").await?;
        r.workers = 1;
        Ok(r)
    }

    /// A worker that begins to drain: the jobs waiting in its own queue are answered
    /// `sandbox_not_found` (listed in the report, for the caller to record), as they would be
    /// if it were gone: it will not take them, and its sandboxes go when it has drained. What
    /// it holds, its locks and its sandboxes stay its own.
    pub async fn answer_own_queue(&self, worker: &str) -> Result<ReapReport, QueueError> {
        self.reap_worker(worker, 0, "drain").await
    }

    /// A worker that has drained and stays listed (idle, beating): whatever it still holds
    /// goes back to its queues, its own queue is answered `sandbox_not_found` (a retry of one
    /// of its last jobs may have landed there), its locks are freed and its sandboxes leave
    /// the registry. Unlike [`Queue::leave`], it is not deregistered.
    pub async fn retire(&self, worker: &str) -> Result<ReapReport, QueueError> {
        let requeued = self.requeue_held(worker).await?;
        let mut r = self.reap_worker(worker, 0, "drained").await?;
        r.requeued += requeued;
        Ok(r)
    }

    async fn reap_worker(
        &self,
        worker: &str,
        cutoff_ms: u64,
        mode: &str,
    ) -> Result<ReapReport, QueueError> {
        let mut conn = self.conn();
        let own = gitfleet_contract::own_queue(worker);
        let mut report = ReapReport::default();
        loop {
            let reply: Result<(u64, u64, i64, Vec<Value>), _> = REAP
                .key(self.keys.workers())
                .key(self.keys.held(worker))
                .key(self.keys.ready(&own))
                .key(self.keys.delayed(&own))
                .key(self.keys.dead(&own))
                .key(self.keys.worker_info(worker))
                .key(self.keys.queues())
                .key(self.keys.done(&own))
                .key(self.keys.cancelled(&own))
                .arg(self.keys.prefix())
                .arg(worker)
                .arg(CHUNK)
                .arg(self.config.dead_ttl.as_secs().max(1))
                .arg(cutoff_ms)
                .arg(mode)
                .invoke_async(&mut conn)
                .await;
            let (requeued, answered, finished, jobs) = match reply {
                Ok(r) => r,
                // Jobs answered by an earlier chunk are in the report: return them, to be
                // recorded; the worker is still listed, so the next round goes on.
                Err(e) if !report.jobs.is_empty() => {
                    tracing::warn!(worker, error = %e, "recovery cut short; the next round goes on");
                    return Ok(report);
                }
                Err(e) => return Err(e.into()),
            };
            report.requeued += requeued;
            report.answered += answered;
            report.jobs.extend(parse_answered(&jobs)?);
            if finished == 1 {
                if mode != "leave" {
                    if report.answered > 0 {
                        tracing::info!(
                            worker,
                            answered = report.answered,
                            "draining: answered the jobs waiting in its own queue"
                        );
                    }
                } else if requeued + answered > 0 || report.requeued + report.answered > 0 {
                    tracing::warn!(
                        worker,
                        requeued = report.requeued,
                        answered = report.answered,
                        "recovered jobs of a worker that is gone"
                    );
                }
                return Ok(report);
            }
        }
    }

    /// The ids in `worker`'s held list (at most its concurrency, plus outcomes in flight).
    pub async fn held(&self, worker: &str) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn();
        Ok(conn.lrange(self.keys.held(worker), 0, -1).await?)
    }

    /// Gives back particular held jobs that `worker` is not running (their fetch reply was
    /// lost): each returns to the front of its queue; the run does not count.
    pub async fn give_back(&self, worker: &str, ids: &[String]) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn();
        let mut inv = GIVE_BACK.key(self.keys.held(worker));
        inv.arg(self.keys.prefix()).arg(worker).arg(ids);
        Ok(inv.invoke_async(&mut conn).await?)
    }

    /// Gives back every job `worker` holds (it will not run them): each returns to the
    /// front of its queue and the run does not count as an attempt.
    pub async fn requeue_held(&self, worker: &str) -> Result<u64, QueueError> {
        let mut total = 0;
        loop {
            let held = self.held(worker).await?;
            if held.is_empty() {
                return Ok(total);
            }
            for chunk in held.chunks(CHUNK) {
                total += self.give_back(worker, chunk).await?;
            }
        }
    }
}

fn error_json(e: &JobError) -> String {
    serde_json::to_string(e).expect("an error is plain data")
}
