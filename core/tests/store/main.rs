//! Integration tests of the durable record against real Postgres and Redis: each test has
//! a database of its own (dropped afterwards) and a Redis key prefix of its own; the outage
//! tests run a private Postgres server they stop and start (see `gitfleet_testkit::fleet`).

use std::path::Path;
use std::time::Duration;

use gitfleet_contract::JobRecord;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_queue::Queue;
use gitfleet_store::Store;
use gitfleet_store::writer::WriterConfig;
use gitfleet_testkit::{Fleet, FleetBuilder};

mod test_ops;

mod batching;
mod budgets;
mod history;
mod keys;
mod lifecycle;
mod migrations;
mod outage;
mod reap;
mod spend;
mod spool;

/// Workers as these tests run them: quick heartbeats, death noticed within seconds, short
/// retries and grace period.
fn worker_config() -> WorkerConfig {
    WorkerConfig {
        name_stem: "store-test".into(),
        heartbeat_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(3),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        grace_period: Duration::from_secs(5),
        ..Default::default()
    }
}

/// A record writer that gives up on Postgres quickly at stop (spooling to `spool`, if
/// given) and beats the worker's row often.
fn writer_config(spool: Option<&Path>) -> WriterConfig {
    WriterConfig {
        spool_dir: spool.map(Into::into),
        flush_timeout: Duration::from_secs(1),
        beat_every: Duration::from_millis(500),
        ..Default::default()
    }
}

/// A fleet (no workers yet) whose workers keep the record in `store`, with
/// [`writer_config`] and the test ops.
fn fleet(store: &Store, spool: Option<&Path>) -> FleetBuilder {
    Fleet::builder("store")
        .config(worker_config())
        .ops(test_ops::ops())
        .store_on(store.clone())
        .writer(writer_config(spool))
}

/// Waits for a job to be done or dead in Redis.
async fn wait_final(queue: &Queue, id: &str) -> JobRecord {
    let r = queue
        .wait(id, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the job exists");
    assert!(r.status.is_final(), "job {id} did not finish: {r:?}");
    r
}
