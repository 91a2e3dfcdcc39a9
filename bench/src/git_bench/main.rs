//! `git-bench`: how fast gitfleet's git ops are, against issue 3's speed goals.
//!
//! `git-bench [--quick] [--json] [--breakdown]` starts everything it measures in this
//! process (see [`fleet`]): a `git daemon` on loopback serving a temporary directory, a
//! queue under a fresh key prefix in the Redis at `$GITFLEET_REDIS_URL` (loopback only,
//! default `redis://127.0.0.1:6379`), and two workers with concurrency 20 and sandboxes
//! under the temporary directory. The repository is testkit's generated one (3,000 files,
//! 2,000 commits; see [`fixture`]). Then, one after another:
//!
//! 1. [`warm_clone`]: clone → release, N = 50 times, with the repository on the worker;
//! 2. [`cold_clone`]: a repository no worker has seen, gitfleet beside plain `git clone`,
//!    5 each, alternating;
//! 3. [`inspect`]: status and diff of a sandbox after writing 3 files, 100 each;
//! 4. [`agents`]: 50 agents pushing to one branch at once (`change` jobs; then `push` jobs
//!    from sandboxes cloned beforehand);
//! 5. [`jail_cost`]: one git process through the runner unjailed and in the bubblewrap jail,
//!    alternating, 200 of each.
//!
//! The workers' git runs jailed or not as `--jail` says (`GITFLEET_SANDBOX_JAIL`, default
//! `auto`, as a worker); to see what the jail costs each op, run git-bench with
//! `--jail off` and `--jail bwrap` alternately (BENCHMARKS.md).
//!
//! It prints one table ([`report`]) with the goals beside the figures, or JSON. Workers are
//! stopped, keys deleted and temporary directories removed at the end, on error, and on
//! Ctrl-C / SIGTERM. `--quick` is a smaller smoke run.

mod agents;
mod breakdown;
mod cold_clone;
mod fixture;
mod fleet;
mod inspect;
mod jail_cost;
mod lock_watch;
mod notes;
mod report;
mod stats;
mod warm_clone;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gitfleet_core::git::JailMode;

use crate::agents::Mode;
use crate::fleet::{Fleet, FleetShape};
use crate::report::{Measured, Report, RunInfo};

#[derive(Parser)]
#[command(
    name = "git-bench",
    about = "gitfleet's git ops against issue 3's speed goals"
)]
struct Cli {
    /// A smaller smoke run (10 warm clones, 2 cold pairs, 20 status/diff, 10 agents).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also record every git process the workers run, and print where the time went.
    #[arg(long)]
    breakdown: bool,
    /// Whether the workers' git runs in the bubblewrap jail: off, bwrap, or auto (jailed
    /// where bubblewrap works), as `GITFLEET_SANDBOX_JAIL` says for a worker.
    #[arg(long, env = "GITFLEET_SANDBOX_JAIL", default_value = "auto")]
    jail: JailMode,
    /// Redis to use; must be loopback.
    #[arg(
        long,
        env = "GITFLEET_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
}

/// How much of everything.
struct Plan {
    warm_runs: usize,
    cold_runs: usize,
    inspect_runs: usize,
    agents: usize,
    jail_runs: usize,
}

const SHAPE: FleetShape = FleetShape {
    workers: 2,
    concurrency: 20,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    breakdown::init(cli.breakdown);
    match run(&cli).await {
        Ok(report) => {
            if cli.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("git-bench: {e}"),
                }
            } else {
                print!("{}", report.render_table());
            }
            if report.any_failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("git-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    ensure_loopback(&cli.redis_url)?;
    let plan = if cli.quick {
        Plan {
            warm_runs: 10,
            cold_runs: 2,
            inspect_runs: 20,
            agents: 10,
            jail_runs: 50,
        }
    } else {
        Plan {
            warm_runs: 50,
            cold_runs: 5,
            inspect_runs: 100,
            agents: 50,
            jail_runs: 200,
        }
    };
    eprintln!(
        "git-bench: the repository (cached in {}) ...",
        fixture::cache_dir().display()
    );
    let source = fixture::generated().await?;
    let repo = fixture::describe(&source).await?;
    let git_version = fixture::git(&source, &["--version"]).await?;
    let commit = fixture::workspace_commit().await;
    let load_start = load_average();

    breakdown::phase("fleet start");
    let mut fleet = Fleet::start(&cli.redis_url, SHAPE, cli.jail).await?;
    eprintln!(
        "git-bench: {} workers up; temporary directory {}",
        fleet.worker_ids.len(),
        fleet.tmp().display()
    );
    let measured = tokio::select! {
        figures = measure(&fleet, &source, &plan) => Ok(figures),
        signal = shutdown_signal() => Err(signal),
    };
    eprintln!("git-bench: stopping the workers, deleting the keys ...");
    fleet.stop().await;
    let jailed = fleet.jailed;
    let (warm, cold, inspect, change, push) = match measured {
        Ok(figures) => figures?,
        Err(signal) => anyhow::bail!("interrupted by {signal}; workers stopped, keys deleted"),
    };
    drop(fleet);
    step("jail cost per git process");
    let jail = Measured::from_result(jail_cost::run(plan.jail_runs).await);

    let notes = notes::write(
        &notes::Figures {
            warm: &warm,
            cold: &cold,
            inspect: &inspect,
            agents: [&change, &push],
        },
        cli.breakdown,
    );
    let info = RunInfo {
        workers: SHAPE.workers,
        concurrency: SHAPE.concurrency,
        quick: cli.quick,
        jail: if jailed { "bwrap" } else { "off" }.to_string(),
        git_version,
        repo,
        commit,
        load_start,
        load_end: load_average(),
    };
    let rows = cli.breakdown.then(breakdown::rows);
    Ok(Report::new(
        info, warm, cold, inspect, change, push, jail, notes, rows,
    ))
}

type Figures = (
    Measured<warm_clone::WarmClone>,
    Measured<cold_clone::ColdClone>,
    Measured<inspect::Inspect>,
    Measured<agents::Agents>,
    Measured<agents::Agents>,
);

/// Runs the scenarios in turn; one failing does not stop the others.
async fn measure(fleet: &Fleet, source: &Path, plan: &Plan) -> anyhow::Result<Figures> {
    let bare = fixture::serve_copy(source, &fleet.served(), "warm.git").await?;
    let url = fleet.url("warm.git");
    let paths = fixture::paths(source).await?;

    step("warm clone");
    let warm = Measured::from_result(warm_clone::run(fleet, &url, plan.warm_runs).await);
    step("cold clone");
    let cold = Measured::from_result(cold_clone::run(fleet, source, plan.cold_runs).await);
    step("status and diff");
    let inspect = Measured::from_result(inspect::run(fleet, &url, &paths, plan.inspect_runs).await);
    step("agents, change");
    let change =
        Measured::from_result(agents::run(fleet, &bare, &url, Mode::Change, plan.agents).await);
    step("agents, push only: setup");
    let push =
        Measured::from_result(agents::run(fleet, &bare, &url, Mode::Push, plan.agents).await);
    Ok((warm, cold, inspect, change, push))
}

/// The 1-minute load average (NaN where /proc cannot be read).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Says what runs next (stderr), and files the git processes that follow under it.
fn step(name: &str) {
    eprintln!("git-bench: {name} ...");
    breakdown::phase(name);
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

/// Refuses anything but loopback TCP or a unix socket.
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
