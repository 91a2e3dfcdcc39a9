//! `queue-bench`: compare Redis-backed job queue "sides" in one run.
//!
//! - `queue-bench run [--sides apalis-redis,gitfleet] [--quick] [--json]`
//!   measures every requested side (see [`scenarios`]) and prints one table
//!   (rows = figures, columns = sides) or JSON.
//! - `queue-bench worker --side S --concurrency N --namespace NS --redis-url URL`
//!   is the worker-process mode the harness spawns for each measurement; it
//!   runs until killed (and exits by itself if its parent goes away).
//!
//! Only loopback Redis is accepted (`--redis-url`, `$GITFLEET_REDIS_URL`,
//! default `redis://127.0.0.1:6379`).

mod apalis_redis_side;
mod gitfleet_side;
mod latency;
mod report;
mod scenarios;
mod side;
mod worker_process;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use redis::aio::ConnectionManager;

use crate::report::SideReport;
use crate::scenarios::Plan;
use crate::side::Side;

#[derive(Parser)]
#[command(name = "queue-bench", about = "Side-by-side Redis job queue benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark against one or more sides.
    Run(RunArgs),
    /// Run ONE worker process of a side until killed (spawned by `run`).
    Worker(WorkerArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Comma-separated sides to measure, in column order.
    #[arg(long, value_delimiter = ',', default_value = "gitfleet,apalis-redis")]
    sides: Vec<String>,
    /// ~10x smaller counts, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Redis to use; must be loopback.
    #[arg(
        long,
        env = "GITFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Per-drain bound, seconds.
    #[arg(long, default_value_t = 120)]
    drain_timeout_secs: u64,
}

#[derive(Args)]
struct WorkerArgs {
    #[arg(long)]
    side: String,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long)]
    namespace: String,
    #[arg(
        long,
        env = "GITFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Worker(args) => {
            // One line the harness can quote if this worker dies.
            if let Err(e) = worker(args).await {
                eprintln!("queue-bench worker error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    ensure_loopback(&args.redis_url)?;
    let drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    let plan = if args.quick {
        Plan::quick(drain_timeout)
    } else {
        Plan::full(drain_timeout)
    };
    let conn = redis::Client::open(args.redis_url.as_str())?
        .get_connection_manager()
        .await
        .context("connecting harness to redis")?;

    let mut reports = Vec::new();
    for name in &args.sides {
        eprintln!("queue-bench: measuring side {name} ...");
        // ---- Side dispatch: one arm per side. -------------------------------
        let report = match name.as_str() {
            apalis_redis_side::NAME => {
                let side = apalis_redis_side::ApalisRedisSide::connect(&args.redis_url).await?;
                measure(&side, &conn, &plan).await?
            }
            gitfleet_side::NAME => {
                let side = gitfleet_side::GitfleetSide::connect(&args.redis_url).await?;
                measure(&side, &conn, &plan).await?
            }
            other => anyhow::bail!(
                "unknown side {other:?} (known: {}, {})",
                gitfleet_side::NAME,
                apalis_redis_side::NAME
            ),
        };
        reports.push(report);
    }

    if args.json {
        println!("{}", report::render_json(&reports)?);
    } else {
        print!("{}", report::render_table(&reports));
    }
    Ok(())
}

async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    ensure_loopback(&args.redis_url)?;
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be > 0");
    // Watchdog in its OWN task: sharing a task (e.g. via `select!`) would
    // re-poll the worker future on every watchdog tick, turning a side that
    // parks until woken into an accidental poller.
    tokio::spawn(async {
        orphaned().await;
        eprintln!("queue-bench worker: parent went away, exiting");
        std::process::exit(0);
    });
    let (url, ns, c) = (&args.redis_url, &args.namespace, args.concurrency);
    // ---- Worker dispatch: one arm per side. ---------------------------------
    match args.side.as_str() {
        apalis_redis_side::NAME => apalis_redis_side::run_worker(url, ns, c).await,
        gitfleet_side::NAME => gitfleet_side::run_worker(url, ns, c).await,
        other => anyhow::bail!("unknown side {other:?}"),
    }
}

/// Measure one side; on Ctrl-C/SIGTERM stop (dropping, hence killing, any
/// worker process) and still delete the side's keys.
async fn measure<S: Side>(
    side: &S,
    conn: &ConnectionManager,
    plan: &Plan,
) -> anyhow::Result<SideReport> {
    let outcome = tokio::select! {
        report = scenarios::run_side(side, conn, plan) => Ok(report),
        sig = shutdown_signal() => Err(sig),
    };
    match outcome {
        Ok(report) => Ok(report),
        Err(sig) => {
            let cleanup = side.reset().await;
            anyhow::bail!(
                "interrupted by {sig}; cleanup of {}: {cleanup:?}",
                side.namespace()
            )
        }
    }
}

/// Resolves on SIGINT or SIGTERM, naming the signal.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Resolves when this process's parent changes (the harness died), so a
/// worker never outlives its harness even after a SIGKILL.
async fn orphaned() {
    let parent = std::os::unix::process::parent_id();
    while std::os::unix::process::parent_id() == parent {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Refuse anything but loopback TCP or a unix socket.
fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    use redis::{ConnectionAddr, IntoConnectionInfo as _};
    let info = url.into_connection_info().context("parsing --redis-url")?;
    match info.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. }
            if matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "[::1]") =>
        {
            Ok(())
        }
        ConnectionAddr::Unix(_) => Ok(()),
        other => anyhow::bail!("only a loopback Redis is allowed, got {other}"),
    }
}
