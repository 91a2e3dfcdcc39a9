//! `gitfleet-scheduler`: the fleet's upkeep on cron (see README.md, "The scheduler"). Any
//! number of replicas may run; one leads and fires the ticks. Configured from the
//! environment; stops on SIGTERM or Ctrl-C.

use anyhow::Context as _;
use gitfleet_queue::Queue;
use gitfleet_queue::QueueConfig;
use gitfleet_scheduler::{Context, SchedulerConfig, cron};
use gitfleet_store::Store;
use gitfleet_store::StoreConfig;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gitfleet_telemetry::init_tracing();
    let config = SchedulerConfig::from_env()?;
    let queue_config = QueueConfig::from_env()?;
    let redis = queue_config.redacted_url();
    let queue = Queue::connect(queue_config)
        .await
        .with_context(|| format!("cannot connect to Redis at {redis}"))?;
    let store_config = StoreConfig::from_env()?;
    let store = Store::open(&store_config)?
        .context("the scheduler needs Postgres: GITFLEET_DATABASE_URL must not be `none`")?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate Postgres at {}", store.redacted_url()))?;
    let ctx = Context {
        store,
        queue,
        replica: config.replica.clone(),
        config,
    };
    // Tests and operators read the replica id from here.
    println!("{{\"replica\":\"{}\"}}", ctx.replica);
    let stop = CancellationToken::new();
    let running = tokio::spawn(cron::run(ctx, stop.clone()));
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.cancel();
    running.await?;
    Ok(())
}
