//! How a worker process runs: its queues, concurrency, heartbeats, retries, shutdown.

use std::time::Duration;

use gitfleet_contract::config::{ConfigError, millis_var, parse_var, secs_var, string_var};
use gitfleet_contract::validate_queue_name;

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `GITFLEET_CONCURRENCY`, default 10: jobs run at once from the shared queue.
    pub concurrency: usize,
    /// `GITFLEET_OWN_QUEUE_CONCURRENCY`, default 10: jobs run at once from the worker's own
    /// queue (`worker:<id>`, ops on its sandboxes).
    pub own_queue_concurrency: usize,
    /// `GITFLEET_QUEUES`, default `jobs`: the shared queues served, comma-separated.
    pub queues: Vec<String>,
    /// `GITFLEET_GRACE_SECS`, default 25: on SIGTERM, how long running jobs may take to
    /// finish before the worker gives them back to the queue and exits.
    pub grace_period: Duration,
    /// `GITFLEET_HEARTBEAT_SECS`, default 2.
    pub heartbeat_interval: Duration,
    /// `GITFLEET_DEAD_AFTER_SECS`, default 15: a worker silent this long is taken for dead;
    /// its jobs go back to the queue. Must be well above the heartbeat interval.
    pub dead_after: Duration,
    /// `GITFLEET_RETRY_BASE_MS`, default 1 000: the first retry's delay; each next one
    /// doubles, with jitter, up to `GITFLEET_RETRY_MAX_MS` (default 300 000).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `GITFLEET_WORKER_NAME`, default the host name: the stem of the worker id
    /// (`<stem>-<ulid>`, unique per process).
    pub name_stem: String,
    /// `GITFLEET_REQUIRE_ORG`, default false: every job must name its organization in its
    /// envelope (the producer's identity); one without is refused `invalid_input`. The
    /// fleet's internal ops (`maintain`) never carry one and are not refused.
    pub require_org: bool,
    /// `GITFLEET_ORG_MAX_SANDBOXES`, default 0 (unlimited): live sandboxes one organization
    /// may have at once, fleet-wide; a clone past it is refused `budget_exceeded`.
    pub org_max_sandboxes: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 10,
            own_queue_concurrency: 10,
            queues: vec!["jobs".into()],
            grace_period: Duration::from_secs(25),
            heartbeat_interval: Duration::from_secs(2),
            dead_after: Duration::from_secs(15),
            retry_base: Duration::from_millis(1000),
            retry_max: Duration::from_millis(300_000),
            name_stem: hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "worker".into()),
            require_org: false,
            org_max_sandboxes: 0,
        }
    }
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let queues: Vec<String> = string_var("GITFLEET_QUEUES", "jobs")
            .split(',')
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .collect();
        for q in &queues {
            validate_queue_name(q).map_err(|e| ConfigError {
                var: "GITFLEET_QUEUES",
                message: e.message,
            })?;
        }
        let cfg = Self {
            concurrency: parse_var("GITFLEET_CONCURRENCY", d.concurrency)?,
            own_queue_concurrency: parse_var(
                "GITFLEET_OWN_QUEUE_CONCURRENCY",
                d.own_queue_concurrency,
            )?,
            queues,
            grace_period: secs_var("GITFLEET_GRACE_SECS", d.grace_period)?,
            heartbeat_interval: secs_var("GITFLEET_HEARTBEAT_SECS", d.heartbeat_interval)?,
            dead_after: secs_var("GITFLEET_DEAD_AFTER_SECS", d.dead_after)?,
            retry_base: millis_var("GITFLEET_RETRY_BASE_MS", d.retry_base)?,
            retry_max: millis_var("GITFLEET_RETRY_MAX_MS", d.retry_max)?,
            name_stem: string_var("GITFLEET_WORKER_NAME", &d.name_stem),
            require_org: parse_var("GITFLEET_REQUIRE_ORG", d.require_org)?,
            org_max_sandboxes: parse_var("GITFLEET_ORG_MAX_SANDBOXES", d.org_max_sandboxes)?,
        };
        if cfg.concurrency == 0 {
            return Err(ConfigError {
                var: "GITFLEET_CONCURRENCY",
                message: "must be at least 1".into(),
            });
        }
        if cfg.dead_after < cfg.heartbeat_interval * 3 {
            return Err(ConfigError {
                var: "GITFLEET_DEAD_AFTER_SECS",
                message: "must be at least three heartbeat intervals".into(),
            });
        }
        Ok(cfg)
    }
}
