//! The fleet's workers as Redis knows them: each registered worker's heartbeat, what it
//! says about itself at every beat (`worker-info:<id>`, written by `lua/heartbeat.lua`
//! from the worker runtime's description) and the jobs it holds. What `GET /v1/workers`
//! answers; the durable record's `workers` table keeps their history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Queue, QueueError};
use gitfleet_contract::rfc3339_micros;

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
    /// The ids in its held list: the jobs it runs, plus any it took an instant ago and has
    /// not started yet, or whose outcome is on its way.
    pub held: Vec<String>,
}

impl Queue {
    /// Every registered worker, most recent heartbeat first. Two round trips, however many
    /// workers: their list and Redis's clock, then each one's description and held list.
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
        Ok(listed
            .into_iter()
            .zip(replies)
            .map(|((worker_id, score), (info, held))| {
                describe(worker_id, score, &info, held, now_ms)
            })
            .collect())
    }
}

fn describe(
    worker_id: String,
    score: f64,
    info: &HashMap<String, String>,
    held: Vec<String>,
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
    WorkerInfo {
        host: text("host"),
        pid: num("pid").and_then(|p| u32::try_from(p).ok()),
        version: text("version"),
        queues: text("queues")
            .map(|q| q.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        concurrency: num("concurrency").and_then(|n| u32::try_from(n).ok()),
        own_queue_concurrency: num("own_queue_concurrency").and_then(|n| u32::try_from(n).ok()),
        started_at: num("started_ms").and_then(ms_time),
        last_beat_at: last_beat_ms.and_then(ms_time),
        heartbeat_age_ms: last_beat_ms.map(|beat| now_ms.saturating_sub(beat)),
        declared_dead,
        held,
        worker_id,
    }
}
