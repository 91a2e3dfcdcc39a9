//! The fleet's workers as Redis knows them: each registered worker's heartbeat, what it
//! says about itself at every beat (`worker-info:<id>`, written by `lua/heartbeat.lua`
//! from the worker runtime's description, its state among it), whether it was asked to
//! drain, the jobs it holds and what each of them is. What `GET /v1/workers` answers; the
//! durable record's `workers` table keeps their history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Queue, QueueError};
use gitfleet_contract::rfc3339_micros;

/// Where a worker is in its life, as it says at every beat (see docs/queue.md, Draining).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Taking jobs.
    Running,
    /// Asked to drain: it takes no job (from any queue, its own included) and is finishing
    /// the ones it holds.
    Draining,
    /// It finished what it held and takes nothing; its sandboxes are gone. It idles, still
    /// beating, until it is undrained (`running` again) or stopped.
    Drained,
    /// Declared dead by the fleet (silent past the dead-after time): its jobs are going to
    /// others.
    Dead,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Draining => "draining",
            WorkerState::Drained => "drained",
            WorkerState::Dead => "dead",
        }
    }
}

/// A job a worker runs now: what one of its busy slots holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RunningJob {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    /// The organization it runs for (absent: a fleet-internal job).
    pub org: Option<String>,
    /// When this run started, by Redis's clock.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
}

/// One registered worker. Fields a worker did not write (an older version, or one that has
/// not described itself) are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WorkerInfo {
    pub worker_id: String,
    /// The name stem it was started with (`GITFLEET_WORKER_NAME`, default the host name).
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// The gitfleet version it runs.
    pub version: Option<String>,
    /// The shared queues it serves; it also serves its own, `worker:<worker_id>`.
    pub queues: Vec<String>,
    /// Jobs it runs at once from the shared queues (`GITFLEET_CONCURRENCY`).
    pub concurrency: Option<u32>,
    /// Jobs it runs at once from its own queue (`GITFLEET_OWN_QUEUE_CONCURRENCY`).
    pub own_queue_concurrency: Option<u32>,
    /// When it registered, by Redis's clock.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
    /// Its last heartbeat, by Redis's clock.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_beat_at: Option<DateTime<Utc>>,
    /// Milliseconds since its last heartbeat (`None` only for a worker declared dead that
    /// never described itself). A worker silent longer than the dead-after time is still
    /// listed until a survivor recovers it.
    pub heartbeat_age_ms: Option<u64>,
    /// The fleet declared it dead and is giving its jobs to others (fencing, see
    /// docs/queue.md); it is unlisted when that is done.
    pub declared_dead: bool,
    /// `running`, `draining`, `drained`, or `dead` (declared dead). A worker that was asked
    /// to drain says `draining` at its next beat (`drain_requested_at` is set at once).
    pub state: WorkerState,
    /// When a drain was asked for (absent: none, or undrained since). From that instant the
    /// worker starts no job, whatever its `state` says yet.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub drain_requested_at: Option<DateTime<Utc>>,
    /// Jobs it can run at once: `concurrency` plus `own_queue_concurrency`.
    pub slots: Option<u32>,
    /// Its busy slots: how many jobs it runs now.
    pub busy: u32,
    /// The job each busy slot runs, oldest start first.
    pub running: Vec<RunningJob>,
    /// The ids in its held list: the jobs it runs, plus any it took an instant ago and has
    /// not started yet, or whose outcome is on its way.
    pub held: Vec<String>,
}

impl Queue {
    /// Every registered worker, most recent heartbeat first. Three round trips, however
    /// many workers: their list and Redis's clock, then each one's description and held
    /// list, then what each held job is.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let mut conn = self.conn();
        let ((secs, micros), listed): ((u64, u64), Vec<(String, f64)>) = redis::pipe()
            .cmd("TIME")
            .zrevrange_withscores(self.keys.workers(), 0, -1)
            .query_async(&mut conn)
            .await?;
        let now_ms = secs * 1000 + micros / 1000;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (worker, _) in &listed {
            pipe.hgetall(self.keys.worker_info(worker))
                .lrange(self.keys.held(worker), 0, -1);
        }
        // Two replies a worker, read as pairs.
        let replies: Vec<(HashMap<String, String>, Vec<String>)> =
            pipe.query_async(&mut conn).await?;
        let mut jobs = redis::pipe();
        for (_, held) in &replies {
            for id in held {
                jobs.cmd("HMGET").arg(self.keys.job(id)).arg(&[
                    "status",
                    "worker",
                    "op",
                    "queue",
                    "org",
                    "started_at",
                ]);
            }
        }
        let fields: Vec<[Option<String>; 6]> = if replies.iter().all(|(_, h)| h.is_empty()) {
            Vec::new()
        } else {
            jobs.query_async(&mut conn).await?
        };
        let mut fields = fields.into_iter();
        Ok(listed
            .into_iter()
            .zip(replies)
            .map(|((worker_id, score), (info, held))| {
                let running = held
                    .iter()
                    .zip(fields.by_ref())
                    .filter_map(|(id, f)| running_job(&worker_id, id, f))
                    .collect();
                describe(worker_id, score, &info, held, running, now_ms)
            })
            .collect())
    }
}

/// A held job as one of `worker`'s busy slots, if this worker runs it now (a held id may be
/// one taken an instant ago and not started yet, or one whose outcome is on its way).
fn running_job(worker: &str, id: &str, f: [Option<String>; 6]) -> Option<RunningJob> {
    let [status, by, op, queue, org, started_at] = f;
    if status.as_deref() != Some("running") || by.as_deref() != Some(worker) {
        return None;
    }
    Some(RunningJob {
        job_id: id.to_string(),
        op: op.unwrap_or_default(),
        queue: queue.unwrap_or_default(),
        org: org.filter(|o| !o.is_empty()),
        started_at: started_at
            .and_then(|us| us.parse::<i64>().ok())
            .and_then(gitfleet_contract::time_from_micros),
    })
}

fn describe(
    worker_id: String,
    score: f64,
    info: &HashMap<String, String>,
    held: Vec<String>,
    mut running: Vec<RunningJob>,
    now_ms: u64,
) -> WorkerInfo {
    let text = |name: &str| info.get(name).filter(|v| !v.is_empty()).cloned();
    let num = |name: &str| info.get(name).and_then(|v| v.parse::<u64>().ok());
    let ms_time = |ms: u64| {
        i64::try_from(ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
    };
    // A worker declared dead has score 0 in the list; its description keeps its last beat.
    let declared_dead = score <= 0.0;
    let last_beat_ms = if declared_dead {
        num("last_beat_ms")
    } else {
        Some(score as u64)
    };
    let state = match text("state").as_deref() {
        _ if declared_dead => WorkerState::Dead,
        Some("draining") => WorkerState::Draining,
        Some("drained") => WorkerState::Drained,
        _ => WorkerState::Running,
    };
    let concurrency = num("concurrency").and_then(|n| u32::try_from(n).ok());
    let own_queue_concurrency = num("own_queue_concurrency").and_then(|n| u32::try_from(n).ok());
    running.sort_by_key(|j| j.started_at);
    WorkerInfo {
        host: text("host"),
        pid: num("pid").and_then(|p| u32::try_from(p).ok()),
        version: text("version"),
        queues: text("queues")
            .map(|q| q.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        concurrency,
        own_queue_concurrency,
        state,
        drain_requested_at: num("drain_requested_ms").and_then(ms_time),
        slots: concurrency.zip(own_queue_concurrency).map(|(a, b)| a + b),
        busy: u32::try_from(running.len()).unwrap_or(u32::MAX),
        running,
        started_at: num("started_ms").and_then(ms_time),
        last_beat_at: last_beat_ms.and_then(ms_time),
        heartbeat_age_ms: last_beat_ms.map(|beat| now_ms.saturating_sub(beat)),
        declared_dead,
        held,
        worker_id,
    }
}
