//! `gateway-bench`: what the HTTP gateway costs, against issue 10's speed goals.
//!
//! `gateway-bench [--quick] [--json]` starts everything it measures in this process, on the
//! machine's Redis (`127.0.0.1:6379`, or `$GITFLEET_TEST_REDIS_URL`, loopback only) and
//! Postgres: testkit's fleet (a key prefix of its own, a Postgres database of its own, one
//! in-process worker with the builtin ops) and the gateway in front of it
//! ([`gateway`]: `gitfleet_gateway::start` and `router` on a free loopback port, with a
//! rate limit no run reaches). Then, one after another:
//!
//! 1. [`round_trip`]: an `echo` job through the gateway (`POST /v1/jobs`, `GET
//!    /v1/jobs/{id}?wait=10`) beside the same through the Rust client (`submit`, `wait`),
//!    alternating job by job, in rounds;
//! 2. [`load`]: enqueue throughput from `wrk` with 64 connections, single jobs and bulk
//!    arrays of 1,000, each beside the same load through the Rust client and `GET /healthz`
//!    for reference, the order alternating by run, into a second gateway on a prefix no
//!    worker serves;
//! 3. [`mcp`]: the size of the MCP `tools/list` answer, and a `git_status` tool call at
//!    `/mcp` beside the same `status` job through the Rust client, on one sandbox cloned
//!    from a `git daemon` on loopback.
//!
//! It prints one table with the goals beside the figures ([`report`]), or JSON. The
//! workers are stopped, the prefixes purged and the database dropped at the end, on error,
//! and on Ctrl-C / SIGTERM. `--quick` is a smaller smoke run.

mod gateway;
mod load;
mod mcp;
mod report;
mod round_trip;
#[path = "../run_env.rs"]
mod run_env;
#[path = "../git_bench/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gitfleet_client::{Client, EnqueueOptions, JobSpec, JobStatus};
use gitfleet_contract::Role;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::{Fleet, GitDaemon, TestQueue, fixtures};

use crate::gateway::Gateway;
use crate::load::LoadRun;
use crate::report::{Report, RunInfo};
use crate::run_env::{ensure_loopback, load_average, shutdown_signal, workspace_commit};

#[derive(Parser)]
#[command(
    name = "gateway-bench",
    about = "What the HTTP gateway costs, against issue 10's speed goals"
)]
struct Cli {
    /// A smaller smoke run (3 rounds of 50 pairs, one load run of each kind, 3 s each).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// How much of everything.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    pub warmup: usize,
    pub rounds: usize,
    pub pairs: usize,
    /// `git_status` pairs per round (and a fifth of it unmeasured first).
    pub mcp_pairs: usize,
    /// Runs of each kind (single, bulk), alternating.
    pub load_runs: usize,
    pub single_secs: u64,
    pub bulk_secs: u64,
}

/// The organization the bench's key and jobs belong to.
const ORG: &str = "bench";
/// Jobs per bulk request (the gateway's default `GITFLEET_GATEWAY_MAX_BULK`).
const BULK: usize = 1000;

/// The gateway binary's allocator (`gateway/src/main.rs`): the gateway runs in this process,
/// so it is measured as it ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = if cli.quick {
        Plan {
            warmup: 20,
            rounds: 3,
            pairs: 50,
            mcp_pairs: 10,
            load_runs: 1,
            single_secs: 3,
            bulk_secs: 3,
        }
    } else {
        Plan {
            warmup: 100,
            rounds: 5,
            pairs: 200,
            mcp_pairs: 40,
            load_runs: 3,
            single_secs: 5,
            bulk_secs: 5,
        }
    };
    let outcome = tokio::select! {
        r = run(plan) => r,
        signal = shutdown_signal() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    match outcome {
        Ok(report) => {
            if cli.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("gateway-bench: {e}"),
                }
            } else {
                print!("{}", report.render_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gateway-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> anyhow::Result<Report> {
    let redis_url = gitfleet_testkit::redis_url();
    ensure_loopback(&redis_url)?;
    load::require_wrk()?;
    let load_start = load_average();

    eprintln!("gateway-bench: the fleet (a worker with git, a database) and the gateway ...");
    let mut fleet = Fleet::builder("gateway-bench")
        .config(WorkerConfig {
            name_stem: "gateway-bench".into(),
            concurrency: 8,
            ..Default::default()
        })
        .git()
        .store()
        .workers(1)
        .start()
        .await;
    let key = fleet
        .store()
        .create_key(ORG, Role::Producer, Some("gateway-bench"), None)
        .await
        .context("creating the bench's API key")?
        .token;
    let gw = Gateway::start(fleet.test_queue().config().clone(), fleet.database_url()).await?;

    eprintln!(
        "gateway-bench: echo round trips, {} rounds of {} pairs ...",
        plan.rounds, plan.pairs
    );
    let sides = round_trip::Sides {
        http: reqwest::Client::new(),
        base: &gw.base,
        key: &key,
        client: &gw.state.client,
        org: ORG,
    };
    let rounds = round_trip::run(&sides, plan.warmup, plan.rounds, plan.pairs).await?;

    eprintln!(
        "gateway-bench: MCP: tools/list, then {} rounds of {} git_status pairs ...",
        plan.rounds, plan.mcp_pairs
    );
    fixtures::bare_repo(&fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&fleet.remotes()).context("starting git daemon")?;
    let mcp = mcp::Mcp {
        http: reqwest::Client::new(),
        base: &gw.base,
        key: &key,
        client: &gw.state.client,
        org: ORG,
    };
    let tools = mcp.tools_list().await?;
    let sandbox = clone(&gw.state.client, &daemon.url("repo.git")).await?;
    let status = mcp
        .status_rounds(&sandbox, plan.mcp_pairs / 5, plan.rounds, plan.mcp_pairs)
        .await?;
    drop(daemon);

    let loads = {
        let queue = TestQueue::new("gateway-bench-load").await;
        let gw_load = Gateway::start(queue.config().clone(), fleet.database_url()).await?;
        let loads = load_runs(&plan, &gw_load, &queue, &fleet, &key).await;
        gw_load.stop().await;
        loads?
    };

    gw.stop().await;
    fleet.shutdown().await;
    Ok(Report::new(
        RunInfo {
            plan,
            commit: workspace_commit(),
            load_start,
            load_end: load_average(),
        },
        rounds,
        loads,
        tools,
        status,
    ))
}

/// A sandbox of `repo_url` for the bench's organization; its id.
async fn clone(client: &Client, repo_url: &str) -> anyhow::Result<String> {
    let spec = JobSpec::new(
        "clone",
        serde_json::json!({"repo_url": repo_url, "agent_id": "bench", "task_id": "mcp"}),
    );
    let options = EnqueueOptions {
        org: Some(ORG.to_string()),
        ..Default::default()
    };
    let job = client
        .submit(&Client::route(&spec), &spec, &options)
        .await?;
    let record = client
        .wait(&job.job_id, Duration::from_secs(60))
        .await?
        .context("the clone's record")?;
    anyhow::ensure!(record.status == JobStatus::Done, "clone: {record:?}");
    record
        .result
        .as_ref()
        .and_then(|r| r["sandbox_id"].as_str())
        .map(str::to_string)
        .context("the clone's sandbox_id")
}

/// The load runs: single and bulk, each through the gateway (wrk) and through the Rust
/// client, the orders swapped every run. After each: the jobs counted, the record writer
/// given time for their rows, the prefix emptied.
async fn load_runs(
    plan: &Plan,
    gw: &Gateway,
    queue: &TestQueue,
    fleet: &Fleet,
    key: &str,
) -> anyhow::Result<Vec<LoadRun>> {
    let dir = tempfile::Builder::new()
        .prefix("gateway-bench-")
        .tempdir()
        .context("a temporary directory")?;
    let single = load::script(dir.path(), "single", Some((key, &load::body(1))))?;
    let bulk = load::script(dir.path(), "bulk", Some((key, &load::body(BULK))))?;
    let healthz = load::script(dir.path(), "healthz", None)?;
    let url = format!("{}/v1/jobs", gw.base);
    let pool = fleet.store().pool().clone();
    let mut out = Vec::new();
    for r in 0..plan.load_runs {
        eprintln!(
            "gateway-bench: {} s of GET /healthz, {} at once ...",
            plan.single_secs,
            load::CONNECTIONS
        );
        let w = load::wrk(&healthz, &format!("{}/healthz", gw.base), plan.single_secs).await?;
        let mut run = LoadRun::from_wrk(1, &w);
        run.via = "healthz";
        eprintln!(
            "gateway-bench:   {:.0} requests/s, p99 {:.2} ms",
            run.requests_per_sec, run.p99_ms
        );
        out.push(run);
        let mut kinds = [1, BULK];
        let mut vias = ["gateway", "client"];
        if r % 2 == 1 {
            kinds.reverse();
            vias.reverse();
        }
        for per in kinds {
            for via in vias {
                let secs = if per == 1 {
                    plan.single_secs
                } else {
                    plan.bulk_secs
                };
                eprintln!(
                    "gateway-bench: {secs} s of {} through the {via}, {} at once ...",
                    if per == 1 {
                        "single jobs"
                    } else {
                        "bulk requests of 1,000"
                    },
                    load::CONNECTIONS,
                );
                let before = rows(&pool).await?;
                let mut run = if via == "gateway" {
                    let script = if per == 1 { &single } else { &bulk };
                    LoadRun::from_wrk(per, &load::wrk(script, &url, secs).await?)
                } else {
                    load::client_load(&gw.state.client, ORG, per, secs).await?
                };
                run.jobs_in_queue = gw
                    .state
                    .client
                    .queues()
                    .await?
                    .into_iter()
                    .find(|q| q.queue == load::QUEUE)
                    .map_or(0, |q| q.waiting);
                anyhow::ensure!(
                    run.jobs_in_queue >= run.requests * per as u64,
                    "{} requests of {per} answered but only {} jobs waiting",
                    run.requests,
                    run.jobs_in_queue
                );
                let want = before + run.jobs_in_queue;
                run.rows_behind_secs =
                    load::caught_up(want, Duration::from_secs(300), || rows(&pool)).await;
                run.writer_rows_per_sec = run
                    .rows_behind_secs
                    .map(|behind| run.jobs_in_queue as f64 / (run.secs + behind));
                let (url, prefix) = (queue.config().redis_url.clone(), queue.prefix().to_string());
                tokio::task::spawn_blocking(move || {
                    gitfleet_testkit::redis_keys::purge_prefix(&url, &prefix)
                })
                .await?;
                eprintln!(
                    "gateway-bench:   {:.0} jobs/s, p50 {:.2} ms, p99 {:.2} ms",
                    run.jobs_per_sec, run.p50_ms, run.p99_ms
                );
                out.push(run);
            }
        }
    }
    Ok(out)
}

/// The rows of the load's jobs in the history.
async fn rows(pool: &sqlx::PgPool) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = $1")
        .bind(load::QUEUE)
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}
