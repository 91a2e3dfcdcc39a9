//! What operators ask of the fleet through Redis, beside its jobs: that a worker drain (or
//! take jobs again), and that the scheduler run a task now; and who the scheduler's leader
//! is, as it announces itself. Each request is state in Redis, not a message: a worker or
//! a leader that was busy, restarting or not yet elected when it was made still finds it
//! (see docs/queue.md, "Draining a worker" and "The scheduler's leader and requests").

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Script;
use serde::{Deserialize, Serialize};

use super::scripts::DRAIN;
use super::{Queue, QueueError};

/// The scheduler's tasks, by name: what a request to run one may name (the scheduler's
/// `Task::name`, held to this list by its tests).
pub const SCHEDULER_TASKS: [&str; 6] = [
    "eviction",
    "priority",
    "health_check",
    "cleanup",
    "template_rebuild",
    "retention",
];

/// Sets the leader's announcement: a new leader replaces the hash (its `since_ms` is now),
/// the same leader renews it; either way the schedules are rewritten and the TTL set.
/// KEYS[1] the leader hash; ARGV: replica, ttl_ms, then field/value pairs.
static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('HGET', KEYS[1], 'replica') ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'replica', ARGV[1], 'since_ms', now_ms)
end
redis.call('HSET', KEYS[1], 'announced_ms', now_ms)
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

/// Drops the leader's announcement if it is still `ARGV[1]`'s. KEYS[1] the leader hash.
static RESIGN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'replica') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// The scheduler replica that leads now, as it announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub replica: String,
    /// When it began to lead (its first announcement), by Redis's clock.
    pub since: Option<DateTime<Utc>>,
    /// Its last announcement (renewed every leader check), by Redis's clock.
    pub announced_at: Option<DateTime<Utc>>,
    /// Each task's schedule on the leader: its cron expression, or `off`.
    pub schedules: Vec<(String, String)>,
}

/// A request to run a scheduler task now, as the leader takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The request's own id (a ulid).
    pub id: String,
    pub task: String,
    /// The run's tick, in µs since the epoch: the row in `scheduler_runs` it makes is
    /// `(task, tick)`. Never on a whole second (a cron tick always is), so a run asked for
    /// by hand is told from the scheduled ones.
    pub tick_us: i64,
    /// Who asked: an API key's id (never a secret).
    pub by: String,
}

impl RunRequest {
    /// A request for `task` now, by `by`: its tick is the current time to the microsecond,
    /// moved off a whole second if it falls on one.
    pub fn now(task: &str, by: &str) -> Self {
        let mut tick_us = Utc::now().timestamp_micros();
        if tick_us % 1_000_000 == 0 {
            tick_us += 1;
        }
        Self {
            id: ulid::Ulid::new().to_string(),
            task: task.to_string(),
            tick_us,
            by: by.to_string(),
        }
    }

    pub fn tick(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.tick_us)
    }
}

/// Whether a run's tick is that of a run asked for by hand ([`RunRequest::now`]).
pub fn is_manual_tick(tick: DateTime<Utc>) -> bool {
    tick.timestamp_subsec_micros() != 0
}

impl Queue {
    /// Asks live worker `worker` to drain. From the moment this returns it starts no job
    /// (its fetches are refused), and a job enqueued for its own queue is answered
    /// `sandbox_not_found` at once; it learns of the request at its next beat or fetch,
    /// says `draining`, finishes what it holds, then says `drained` and idles. Asking again
    /// changes nothing. Returns false when `worker` is not a live worker.
    pub async fn drain_worker(&self, worker: &str) -> Result<bool, QueueError> {
        self.drain_as(worker, "drain").await
    }

    /// Withdraws the request to drain `worker`: once drained (or at once, if it never
    /// noticed), it takes jobs again. Returns false when `worker` is not a live worker.
    pub async fn undrain_worker(&self, worker: &str) -> Result<bool, QueueError> {
        self.drain_as(worker, "undrain").await
    }

    async fn drain_as(&self, worker: &str, mode: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn();
        let found: i64 = DRAIN
            .key(self.keys.workers())
            .key(self.keys.worker_info(worker))
            .arg(worker)
            .arg(mode)
            .invoke_async(&mut conn)
            .await?;
        Ok(found == 1)
    }

    /// Announces `replica` as the scheduler's leader with its `schedules` (task, cron or
    /// `off`), for `ttl`: a leader renews it every check, so it lapses soon after the leader
    /// is gone.
    pub async fn announce_leader(
        &self,
        replica: &str,
        schedules: &[(&str, String)],
        ttl: Duration,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let mut inv = ANNOUNCE.key(self.keys.scheduler_leader());
        inv.arg(replica).arg(ttl.as_millis().max(1) as u64);
        for (task, schedule) in schedules {
            inv.arg(format!("schedule:{task}")).arg(schedule);
        }
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Withdraws `replica`'s announcement, if the current one is its own.
    pub async fn resign_leader(&self, replica: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let _: i64 = RESIGN
            .key(self.keys.scheduler_leader())
            .arg(replica)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The scheduler's leader as it last announced itself; `None` when no replica leads (or
    /// none has within the announcement's TTL).
    pub async fn leader(&self) -> Result<Option<Leader>, QueueError> {
        let mut conn = self.conn();
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.scheduler_leader())
            .query_async(&mut conn)
            .await?;
        let Some(replica) = f.get("replica").cloned() else {
            return Ok(None);
        };
        let ms = |name: &str| {
            f.get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis)
        };
        let mut schedules: Vec<(String, String)> = f
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("schedule:")?.to_string(), v.clone())))
            .collect();
        schedules.sort();
        Ok(Some(Leader {
            since: ms("since_ms"),
            announced_at: ms("announced_ms"),
            replica,
            schedules,
        }))
    }

    /// Queues a request to run a task now, for the leader to take.
    pub async fn request_run(&self, request: &RunRequest) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let text = serde_json::to_string(request).expect("plain data");
        let _: i64 = redis::cmd("LPUSH")
            .arg(self.keys.scheduler_requests())
            .arg(text)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes up to `max` requests to run a task now, oldest first (the leader's). One that
    /// does not parse is dropped with a warning: nothing could ever run it.
    pub async fn take_run_requests(&self, max: usize) -> Result<Vec<RunRequest>, QueueError> {
        let mut conn = self.conn();
        let taken: Option<Vec<String>> = redis::cmd("RPOP")
            .arg(self.keys.scheduler_requests())
            .arg(max.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(taken
            .unwrap_or_default()
            .into_iter()
            .filter_map(|text| match serde_json::from_str(&text) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "dropped a run request that does not parse");
                    None
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_asked_for_by_hand_never_ticks_on_a_whole_second() {
        for _ in 0..1000 {
            let r = RunRequest::now("eviction", "k");
            assert!(is_manual_tick(r.tick().unwrap()), "{r:?}");
        }
        let cron = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(!is_manual_tick(cron));
    }
}
