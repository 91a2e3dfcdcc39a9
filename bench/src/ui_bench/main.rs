//! `ui-bench`: the dashboard's pages over a big history, against issue 11's speed goal
//! (every page's server time at most 50 ms p95 with 1,000,000 jobs of history and 10,000
//! dead; 50 open live pages cost the database one query set per interval).
//!
//! `ui-bench [--quick]` makes everything it measures, on the machine's Redis (loopback
//! only) and Postgres:
//!
//! 1. [`seed`]: a database of its own with the migrations, 1,000,000 job rows over the
//!    last 30 days (organizations, ops, queues, agents, tasks, sandboxes on 900
//!    repositories, states, error messages on the failed ones, runs with git steps for a
//!    fifth), made by Postgres from `generate_series` and then `VACUUM ANALYZE`d; and
//!    10,000 dead jobs under a Redis prefix of its own, made the queue's way (enqueued,
//!    taken, finished dead), each with its history row. The seeding time is printed.
//! 2. The release gateway (`gitfleet-gateway` beside this executable) as its own process on
//!    a free loopback port; a sign-in to the dashboard with an admin key and with a key of
//!    the biggest organization; then each page of [`pages::PAGES`] requested 100 times, one
//!    request at a time, in `--rounds` rounds. The time is the client's, from sending the
//!    request to the last byte of the answer on loopback: the server's time plus a
//!    loopback round trip.
//! 3. [`live`]: 0, 1 and 50 open live pages, and the transactions the database ran over a
//!    window of each.
//!
//! The gateway is killed, the Redis prefix purged and the database dropped at the end, on
//! error, and on Ctrl-C / SIGTERM.

mod gateway;
mod live;
mod pages;
mod seed;
// Shared with git-bench; this bench uses its percentiles, not its summaries.
#[path = "../run_env.rs"]
mod run_env;
#[allow(dead_code)]
#[path = "../git_bench/stats.rs"]
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use gitfleet_client::StoreConfig;
use gitfleet_contract::Role;
use gitfleet_queue::{Queue, QueueConfig};
use gitfleet_store::Store;
use gitfleet_testkit::postgres::TestDatabase;

use crate::pages::{Measured, PAGES, Samples, Visitor};
use crate::run_env::{ensure_loopback, load_average, shutdown_signal, workspace_commit};

/// The goal: every page's p95 at most this.
const GOAL_P95_MS: f64 = 50.0;
/// How long the gateway is left alone between the page rounds and the live windows.
const QUIET: Duration = Duration::from_secs(12);

#[derive(Parser)]
#[command(
    name = "ui-bench",
    about = "The dashboard's pages over a big history, against issue 11's speed goal"
)]
struct Cli {
    /// A smaller smoke run: 100,000 jobs, 1,000 dead, 20 requests per page, one round,
    /// short live windows.
    #[arg(long)]
    quick: bool,
    /// Job rows in the history.
    #[arg(long)]
    jobs: Option<u64>,
    /// Dead jobs in Redis.
    #[arg(long)]
    dead: Option<usize>,
    /// Requests per page per round.
    #[arg(long)]
    requests: Option<usize>,
    /// Rounds over every page (the report gives each page's median p95 over them).
    #[arg(long)]
    rounds: Option<usize>,
    /// Live pages opened at once.
    #[arg(long, default_value_t = 50)]
    streams: usize,
    /// The gateway binary (default: `gitfleet-gateway` beside this executable).
    #[arg(long)]
    gateway: Option<PathBuf>,
}

struct Plan {
    jobs: u64,
    dead: usize,
    requests: usize,
    warmup: usize,
    rounds: usize,
    streams: usize,
    live: Duration,
    settle: Duration,
    window: Duration,
}

/// The gateway binary's allocator, for the bench's own client side.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = Plan {
        jobs: cli
            .jobs
            .unwrap_or(if cli.quick { 100_000 } else { 1_000_000 }),
        dead: cli.dead.unwrap_or(if cli.quick { 1_000 } else { 10_000 }),
        requests: cli.requests.unwrap_or(if cli.quick { 20 } else { 100 }),
        warmup: if cli.quick { 2 } else { 5 },
        rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
        streams: cli.streams.max(1),
        live: Duration::from_millis(500),
        settle: Duration::from_secs(3),
        window: Duration::from_secs(if cli.quick { 5 } else { 20 }),
    };
    let binary = match cli.gateway.map(Ok).unwrap_or_else(gateway::default_binary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ui-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = tokio::select! {
        r = run(&plan, &binary) => r,
        signal = shutdown_signal() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    match outcome {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ui-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Purges the bench's Redis prefix when dropped.
struct Prefix {
    url: String,
    prefix: String,
}

impl Drop for Prefix {
    fn drop(&mut self) {
        gitfleet_testkit::redis_keys::purge_prefix(&self.url, &self.prefix);
    }
}

async fn run(plan: &Plan, binary: &std::path::Path) -> anyhow::Result<String> {
    let redis_url = gitfleet_testkit::redis_url();
    ensure_loopback(&redis_url)?;
    let load_start = load_average();
    // Dropped last (after the gateway, which holds connections to it).
    let db = TestDatabase::create().context("creating the bench's database")?;
    let prefix = Prefix {
        url: redis_url.clone(),
        prefix: format!("ui-bench:{}:", std::process::id()),
    };
    purge_now(&prefix);

    let store = Store::open(&StoreConfig {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })?
    .context("a store")?;
    store.migrate().await.context("migrating the database")?;
    // The seed's statements run for a minute: a pool without the store's statement timeout.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .context("connecting to the bench's database")?;

    eprintln!(
        "ui-bench: seeding {} job rows into {} ...",
        plan.jobs, db.name
    );
    let (history_time, vacuum_time) = seed::history(&pool, plan.jobs).await?;
    eprintln!(
        "ui-bench:   {:.1} s, VACUUM ANALYZE {:.1} s",
        history_time.as_secs_f64(),
        vacuum_time.as_secs_f64()
    );
    eprintln!("ui-bench: {} dead jobs in Redis ...", plan.dead);
    let started = Instant::now();
    let queue = Queue::connect(QueueConfig {
        redis_url: redis_url.clone(),
        key_prefix: prefix.prefix.clone(),
        ..Default::default()
    })
    .await
    .context("connecting to Redis")?;
    let dead_ids = seed::dead_jobs(&queue, &pool, plan.dead).await?;
    sqlx::raw_sql("ANALYZE jobs").execute(&pool).await?;
    let dead_time = started.elapsed();
    eprintln!("ui-bench:   {:.1} s", dead_time.as_secs_f64());
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await?;
    let (runs,): (i64,) = sqlx::query_as("SELECT count(*) FROM job_runs")
        .fetch_one(&pool)
        .await?;
    let (sandboxes,): (i64,) = sqlx::query_as("SELECT count(*) FROM git_sandboxes")
        .fetch_one(&pool)
        .await?;
    let (db_size,): (String,) =
        sqlx::query_as("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&pool)
            .await?;

    let admin_key = store
        .create_key("ops", Role::Admin, Some("ui-bench admin"), None)
        .await?
        .token;
    let org_key = store
        .create_key("org-00", Role::Operator, Some("ui-bench org-00"), None)
        .await?
        .token;
    let samples = Samples::pick(&pool, dead_ids.last().context("no dead jobs were made")?).await?;

    let gw = gateway::GatewayProcess::start(
        binary,
        &gateway::Settings {
            redis_url: &redis_url,
            key_prefix: &prefix.prefix,
            database_url: &db.url,
            live_ms: plan.live.as_millis() as u64,
        },
    )?;
    eprintln!("ui-bench: gateway {} (pid {})", gw.base, gw.pid());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let visitor = Visitor {
        admin_cookie: pages::sign_in(&http, &gw.base, &admin_key).await?,
        org_cookie: pages::sign_in(&http, &gw.base, &org_key).await?,
        http,
        base: gw.base.clone(),
        admin_key,
        org_key,
    };

    // Every page, in rounds; the paths of `next` pages are found once.
    let mut paths = Vec::with_capacity(PAGES.len());
    for p in PAGES {
        let path = samples.fill(p.path);
        paths.push(if p.next {
            visitor.next_path(p.who, &path).await?
        } else {
            path
        });
    }
    let mut rounds: Vec<Vec<Measured>> = Vec::new();
    for r in 0..plan.rounds {
        eprintln!(
            "ui-bench: round {} of {}: {} pages, {} requests each ...",
            r + 1,
            plan.rounds,
            PAGES.len(),
            plan.requests
        );
        let mut round = Vec::with_capacity(PAGES.len());
        for (p, path) in PAGES.iter().zip(&paths) {
            round.push(pages::measure(&visitor, p.who, path, plan.warmup, plan.requests).await?);
        }
        rounds.push(round);
    }

    eprintln!(
        "ui-bench: live pages: 0, 1 and {} streams, {} s each ...",
        plan.streams,
        plan.window.as_secs()
    );
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&gitfleet_testkit::postgres::admin_url())
        .await
        .context("connecting to the admin database")?;
    // A backend reports its counts to pg_stat_database up to a few seconds after its
    // transactions: the page rounds' must be in before the first window opens.
    tokio::time::sleep(QUIET).await;
    let mut windows = Vec::new();
    for n in [0, 1, plan.streams] {
        windows.push(
            live::window(
                &visitor,
                &admin,
                &db.name,
                n,
                plan.live,
                plan.settle,
                plan.window,
            )
            .await?,
        );
    }
    drop(gw);

    let mut out = String::new();
    let commit = workspace_commit();
    out.push_str(&format!(
        "ui-bench at {commit}: {rows} job rows ({runs} runs, {sandboxes} sandboxes, {db_size}), \
         {} dead in Redis\n",
        dead_ids.len()
    ));
    out.push_str(&format!(
        "seeding: history {:.1} s, VACUUM ANALYZE {:.1} s, dead jobs {:.1} s; \
         load average {load_start:.2} at the start, {:.2} at the end\n",
        history_time.as_secs_f64(),
        vacuum_time.as_secs_f64(),
        dead_time.as_secs_f64(),
        load_average()
    ));
    out.push_str(&format!(
        "time to the whole answer on loopback, {} requests per page per round, {} round(s); \
         goal: p95 <= {GOAL_P95_MS} ms\n\n",
        plan.requests, plan.rounds
    ));
    out.push_str(&format!(
        "{:<38} {:<9} {:>7} {:>7} {:>7} {:>9} {:>7} {:>6}  {}\n",
        "page", "as", "p50 ms", "p95 ms", "max ms", "p95 med.", "bytes", "status", "verdict"
    ));
    let mut misses = 0;
    for (i, p) in PAGES.iter().enumerate() {
        let last = &rounds[rounds.len() - 1][i];
        let all: Vec<f64> = rounds.iter().flat_map(|r| r[i].samples.clone()).collect();
        let p95s: Vec<f64> = rounds
            .iter()
            .map(|r| stats::percentile(&r[i].samples, 95.0))
            .collect();
        let p95_median = stats::median(&p95s);
        let status = rounds.iter().map(|r| r[i].status).max().unwrap_or(0);
        let ok = p95_median <= GOAL_P95_MS && status == 200;
        if !ok {
            misses += 1;
        }
        out.push_str(&format!(
            "{:<38} {:<9} {:>7.1} {:>7.1} {:>7.1} {:>9.1} {:>7} {:>6}  {}\n",
            p.name,
            p.who.as_str(),
            stats::percentile(&all, 50.0),
            stats::percentile(&all, 95.0),
            stats::percentile(&all, 100.0),
            p95_median,
            last.bytes,
            status,
            if ok { "meets" } else { "MISSES" }
        ));
        if let Some(problem) = rounds.iter().find_map(|r| r[i].problem.clone()) {
            out.push_str(&format!("    {problem}\n"));
        }
    }
    out.push_str(&format!(
        "\n{} of {} pages meet the goal (the median over the rounds of each page's p95)\n\n",
        PAGES.len() - misses,
        PAGES.len()
    ));
    out.push_str(&format!(
        "live pages (GET /ui/live, one update every {} ms): the database's transactions \
         (pg_stat_database) over each window\n",
        plan.live.as_millis()
    ));
    out.push_str(&format!(
        "{:>7} {:>6} {:>9} {:>11} {:>13} {:>14} {:>16}\n",
        "streams",
        "secs",
        "intervals",
        "query sets",
        "transactions",
        "per interval",
        "updates per page"
    ));
    let idle = windows[0].per_interval();
    for w in &windows {
        out.push_str(&format!(
            "{:>7} {:>6.1} {:>9.1} {:>11} {:>13} {:>14.2} {:>16}\n",
            w.streams,
            w.secs,
            w.intervals,
            w.query_sets,
            w.transactions,
            w.per_interval(),
            if w.streams == 0 {
                "-".to_string()
            } else {
                format!("{}-{}", w.events_min, w.events_max)
            }
        ));
    }
    let (one, many) = (&windows[1], &windows[2]);
    out.push_str(&format!(
        "{} pages: {:.2} transactions per interval, 1 page: {:.2}, none: {idle:.2} ({}).\n",
        many.streams,
        many.per_interval(),
        one.per_interval(),
        if many.query_sets == one.query_sets
            && (many.per_interval() - one.per_interval()).abs() <= 0.5
        {
            "as many pages cost what one does: one query set per interval"
        } else {
            "NOT one query set per interval"
        }
    ));
    Ok(out)
}

fn purge_now(p: &Prefix) {
    gitfleet_testkit::redis_keys::purge_prefix(&p.url, &p.prefix);
}
