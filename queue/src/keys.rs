//! The Redis key layout (documented for other languages in `docs/queue.md`).

/// Builds every key name from one prefix (`gitfleet:` unless configured otherwise).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Hash: one job's record.
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// List: a finished job's wake-up token, rotated (never popped) by waiters.
    pub fn wake(&self, id: &str) -> String {
        format!("{}job:{id}:wake", self.prefix)
    }

    /// Stream: a watched job's changes of state, a snapshot after each (scripts add to it
    /// only while the job's `waiters` flag is set).
    pub fn events(&self, id: &str) -> String {
        format!("{}job:{id}:events", self.prefix)
    }

    /// List: the ids waiting in a queue, oldest on the right. This is the backlog.
    pub fn ready(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }

    /// Sorted set: jobs due later (delayed or waiting out a retry), by due time in ms.
    pub fn delayed(&self, queue: &str) -> String {
        format!("{}{queue}:delayed", self.prefix)
    }

    /// Sorted set: finished jobs whose records are still kept, by finish time in ms.
    pub fn done(&self, queue: &str) -> String {
        format!("{}{queue}:done", self.prefix)
    }

    /// Sorted set: cancelled jobs whose records are still kept, by time of cancelling in ms.
    pub fn cancelled(&self, queue: &str) -> String {
        format!("{}{queue}:cancelled", self.prefix)
    }

    /// Sorted set: dead jobs, by time of death in ms.
    pub fn dead(&self, queue: &str) -> String {
        format!("{}{queue}:dead", self.prefix)
    }

    /// List: the jobs one worker holds.
    pub fn held(&self, worker: &str) -> String {
        format!("{}held:{worker}", self.prefix)
    }

    /// Sorted set: live workers, by last heartbeat in ms.
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// Hash: a worker's host, pid, version, queues, slots, start and last beat (see
    /// [`crate::WorkerInfo`]).
    pub fn worker_info(&self, worker: &str) -> String {
        format!("{}worker-info:{worker}", self.prefix)
    }

    /// Hash: the scheduler replica that leads now, as it announces itself: `replica`,
    /// `since_ms`, and `schedule:<task>` (each task's cron expression, or `off`), with a TTL
    /// the leader keeps renewing.
    pub fn scheduler_leader(&self) -> String {
        format!("{}scheduler:leader", self.prefix)
    }

    /// List: requests to run a scheduler task now (JSON, newest on the left), taken by the
    /// leader.
    pub fn scheduler_requests(&self) -> String {
        format!("{}scheduler:requests", self.prefix)
    }

    /// Set: every queue that has ever had a job.
    pub fn queues(&self) -> String {
        format!("{}queues", self.prefix)
    }

    /// String: an idempotency key's first job id, scoped by the organization (`""` for
    /// none; an org id has no `:`).
    pub fn idempotency(&self, org: &str, key: &str) -> String {
        format!("{}idem:{org}:{key}", self.prefix)
    }

    /// Hash: who a live sandbox belongs to: `org` (absent for none), `agent`, `worker`.
    pub fn sandbox(&self, id: &str) -> String {
        format!("{}sandbox:{id}", self.prefix)
    }

    /// Set: the live sandboxes of one worker (dropped with it when it is declared dead).
    pub fn worker_sandboxes(&self, worker: &str) -> String {
        format!("{}sandboxes:{worker}", self.prefix)
    }

    /// Set: the live sandboxes of one organization, fleet-wide (its count is what
    /// `GITFLEET_ORG_MAX_SANDBOXES` limits).
    pub fn org_sandboxes(&self, org: &str) -> String {
        format!("{}org-sandboxes:{org}", self.prefix)
    }
}
