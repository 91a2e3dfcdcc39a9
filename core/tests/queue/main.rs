//! Integration tests of the queue layer against the real Redis on 127.0.0.1:6379
//! (`GITFLEET_TEST_REDIS_URL` to use another). Each test works under a key prefix of its
//! own and deletes it afterwards, so tests run side by side (see `gitfleet_testkit::fleet`).

use std::time::Duration;

use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::{Fleet, FleetBuilder};

mod test_ops;

mod backlog;
mod bulk;
mod cancelling;
mod fencing;
mod job_limits;
mod producing;
mod retries;
mod waiting;
mod workers;

/// Workers as these tests run them: quick heartbeats, death noticed within seconds, short
/// retries and grace period, so a test spends its time on the queue, not on waiting.
fn worker_config() -> WorkerConfig {
    WorkerConfig {
        name_stem: "queue".into(),
        heartbeat_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(3),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        grace_period: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A fleet (no workers yet) whose workers are made with [`worker_config`].
fn fleet() -> FleetBuilder {
    Fleet::builder("queue").config(worker_config())
}
