//! `gitfleet-worker`: one worker process, configured from the environment (see README.md).
//! Runs until SIGTERM or Ctrl-C, then stops gracefully within `GITFLEET_GRACE_SECS`
//! (exit 0, or 1 when jobs had to be given back); exits 2 at once, dropping its sandboxes,
//! if it finds that the fleet declared it dead (see `gitfleet_core::runtime`).

use anyhow::Context;
use gitfleet_contract::ops::{JobLimits, Rules};
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::Worker;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::sandbox::GitSettings;
use gitfleet_queue::Queue;
use gitfleet_queue::QueueConfig;
use gitfleet_store::Store;
use gitfleet_store::StoreConfig;
use gitfleet_store::writer::WriterConfig;
use tokio::signal::unix::{SignalKind, signal};

/// The exit status of a worker that stopped because the fleet had declared it dead (it was
/// silent past `GITFLEET_DEAD_AFTER_SECS`); 1 is a shutdown that had to give jobs back.
const EXIT_DECLARED_DEAD: i32 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gitfleet_telemetry::init_tracing();
    let queue_config = QueueConfig::from_env()?;
    let worker_config = WorkerConfig::from_env()?;
    let redis = queue_config.redacted_url();
    let queue = Queue::connect(queue_config)
        .await
        .with_context(|| format!("cannot connect to Redis at {redis}"))?;
    let git = GitSettings::from_env()?;
    let rules = Rules {
        allow_file_repos: git.allow_file_protocol,
        limits: JobLimits::from_env()?,
    };
    let worker = Worker::new(queue, worker_config, Ops::with_rules(rules));
    let mut worker = worker
        .with_git(&git)
        .await
        .map_err(|e| anyhow::anyhow!("cannot set up sandboxes: {e}"))?;
    let store_config = StoreConfig::from_env()?;
    match Store::open(&store_config)? {
        Some(store) => {
            tracing::info!(postgres = %store.redacted_url(), "keeping the record in postgres");
            let writer = WriterConfig {
                spool_dir: Some(git.base_root().join("spool")),
                ..Default::default()
            };
            worker = worker.with_store(store, writer, store_config.budget_refresh);
        }
        None => tracing::warn!(
            "GITFLEET_DATABASE_URL=none: no job history, sandbox registry or budgets"
        ),
    }
    // Tests and operators read the id from here.
    println!("{}", serde_json_line(worker.id()));
    let mut term = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let report = worker.run(shutdown).await?;
    if report.declared_dead {
        // Logged by the runtime; a supervisor starts a fresh worker (new id, empty root).
        std::process::exit(EXIT_DECLARED_DEAD);
    }
    if !report.drained {
        std::process::exit(1);
    }
    Ok(())
}

fn serde_json_line(id: &str) -> String {
    format!("{{\"worker_id\":\"{id}\"}}")
}
