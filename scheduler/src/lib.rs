//! gitfleet's scheduler: the fleet's upkeep on cron, run by one leader among any number of
//! replicas.
//!
//! Each task is a file of its own in [`tasks`], all of one shape: a config with defaults
//! (its cron schedule from an environment variable, and its settings) and a
//! `run_once(&ctx, tick)` that does one round at the time `tick` and says what it did.
//! [`leader`] elects the replica that fires ticks (a Postgres session advisory lock);
//! [`runs`] records each (task, tick) before running it, so a tick never runs twice even
//! if two replicas believe they lead; [`control`] announces the leader in Redis and runs
//! the tasks asked for by hand there (the gateway's `POST /v1/schedule/{task}/run`). Work
//! on a worker's sandboxes is done by that worker, through `maintain` jobs on its own queue
//! ([`maintenance`]).

pub mod config;
pub mod control;
pub mod cron;
pub mod leader;
pub mod maintenance;
pub mod runs;
pub mod tasks;

use gitfleet_queue::{Queue, QueueError};
use gitfleet_store::{Store, StoreError};

pub use config::SchedulerConfig;
pub use tasks::{Outcome, Task};

/// What a task round can fail on.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Queue(#[from] QueueError),
}

/// What every task round works with.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: Store,
    pub queue: Queue,
    /// This replica's id (recorded with every run it makes).
    pub replica: String,
    pub config: SchedulerConfig,
}
