//! `gitfleet`: submit jobs, read them back, look at the queues.
//!
//! Commands on the queue print JSON on standard output; the ones on the durable record
//! (`jobs`, `sandboxes`, `orgs`, `schedule`) print a table, or JSON with `--json`. Exit
//! codes: 0 done (or accepted, without `--wait`), 1 dead, 2 bad usage or invalid input, 3
//! `--wait` timed out, 4 the queue (Redis) or the record (Postgres) could not be reached,
//! 5 refused: the job's organization is over budget (`budget_exceeded`).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

mod demo;
mod private_redis;
mod tables;

use clap::{Args, Parser, Subcommand};
use demo::UrlSource;
use gitfleet_client::store::{self, StoreError};
use gitfleet_client::{
    Client, DEFAULT_QUEUE, EnqueueOptions, ErrorKind, JobError, JobRecord, JobSpec, JobStatus,
    QueueConfig, QueueError, Store, StoreConfig,
};
use serde_json::{Value, json};

/// gitfleet: git jobs for fleets of AI agents.
#[derive(Parser)]
#[command(name = "gitfleet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue a job: `gitfleet submit <op> '<json args>'`, or many with --bulk.
    Submit(Submit),
    /// Print a job's record (optionally waiting for it to finish), with its history from
    /// Postgres (`history`: every run, its timings and errors) when the record has it.
    Job {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// List jobs from the durable record, newest first.
    Jobs {
        /// waiting, delayed, running, done or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        op: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        list: List,
    },
    /// List the sandbox registry, most recently used first.
    Sandboxes {
        #[command(flatten)]
        list: List,
    },
    /// Organizations: budget and spend this month; `orgs set-budget <org> <usd|none>`.
    Orgs {
        #[command(subcommand)]
        command: Option<OrgsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// List the scheduler's recent runs (task, tick, replica, outcome, duration).
    Schedule {
        #[command(flatten)]
        list: List,
    },
    /// Apply the database migrations (safe to run from many places at once).
    Migrate,
    /// Print counts for every queue.
    Queues,
    /// Send a dead job back to its queue with a fresh set of attempts.
    Retry { id: String },
    /// gitfleet's main job on this machine: a local git server, two workers, ten agents
    /// through clone, write_files and push; prints a summary.
    Demo,
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// Set an organization's monthly sandbox budget in USD (`none`: unlimited).
    SetBudget { org: String, usd: String },
}

#[derive(Args)]
struct List {
    /// Rows at most.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// A JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct Submit {
    /// The op (echo, sleep, ...). Omit with --bulk.
    #[arg(required_unless_present = "bulk")]
    op: Option<String>,
    /// The op's args as a JSON object (default {}).
    #[arg(conflicts_with = "bulk")]
    args: Option<String>,
    /// Read one {"op", "args"} object per line from standard input; print one job id a line.
    #[arg(long)]
    bulk: bool,
    /// The queue (default: the own queue of the worker holding the job's `sandbox_id`, else
    /// the shared queue `jobs`).
    #[arg(long)]
    queue: Option<String>,
    /// Run no earlier than this many seconds from now.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    delay: Option<f64>,
    /// A second submit with the same key returns the first job instead of a new one.
    #[arg(long, value_name = "K", conflicts_with = "bulk")]
    idempotency_key: Option<String>,
    /// Runs allowed before the job is dead (default: the op's, 5 for most).
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    #[command(flatten)]
    wait: Wait,
}

#[derive(Args)]
struct Wait {
    /// Wait for the job to be done or dead before printing.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        allow_negative_numbers = true
    )]
    timeout: f64,
}

/// How a command ended, and so the exit code.
enum Fail {
    Invalid(String),
    Unreachable(String),
    /// Over budget.
    Refused(JobError),
}

impl From<QueueError> for Fail {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(err) if err.kind == ErrorKind::BudgetExceeded => Fail::Refused(err),
            QueueError::Invalid(err) => Fail::Invalid(err.message),
            other => Fail::Unreachable(other.to_string()),
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Config(m) => Fail::Invalid(m),
            other => Fail::Unreachable(other.to_string()),
        }
    }
}

fn print(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

fn error_object(kind: ErrorKind, message: &str) -> Value {
    json!({ "error": JobError::new(kind, message) })
}

fn secs(name: &str, v: f64) -> Result<Duration, Fail> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Fail::Invalid(format!("{name}: must be a number of seconds >= 0")))
}

/// Prints a record and picks the exit code for it.
fn report(record: &JobRecord, waited: bool) -> u8 {
    print(&record.to_cli_json());
    match record.status {
        JobStatus::Done => 0,
        JobStatus::Dead => 1,
        _ if waited => 3,
        _ => 0,
    }
}

async fn connect() -> Result<Client, Fail> {
    let config = QueueConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    let url = config.redacted_url();
    let client = Client::connect(config)
        .await
        .map_err(|e| Fail::Unreachable(format!("cannot reach the queue at {url}: {e}")))?;
    Ok(match open_store()? {
        Some(store) => client.with_store(store),
        None => client,
    })
}

/// The durable record of `GITFLEET_DATABASE_URL` (`None` when it is `none`).
fn open_store() -> Result<Option<Store>, Fail> {
    let config = StoreConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    Ok(Store::open(&config)?)
}

/// The record, for commands that cannot do without it.
fn need_store() -> Result<Store, Fail> {
    open_store()?
        .ok_or_else(|| Fail::Invalid("GITFLEET_DATABASE_URL is none: there is no record".into()))
}

/// Maps a failed read of the record to an exit, naming the database (redacted).
fn unreachable(store: &Store) -> impl Fn(StoreError) -> Fail + '_ {
    move |e| match e {
        StoreError::Config(m) => Fail::Invalid(m),
        other => Fail::Unreachable(format!(
            "cannot read the record at {}: {other}",
            store.redacted_url()
        )),
    }
}

/// Prints rows as a JSON array (`--json`) or a table.
fn print_rows<T: serde::Serialize>(rows: &[T], json: bool, table: impl Fn(&[T]) -> String) {
    if json {
        print(&serde_json::to_value(rows).expect("plain data"));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(table(rows).as_bytes());
    }
}

async fn history(cmd: Command) -> Result<u8, Fail> {
    match cmd {
        Command::Jobs {
            status,
            op,
            org,
            list,
        } => {
            if let Some(s) = &status {
                s.parse::<JobStatus>()
                    .map_err(|e| Fail::Invalid(format!("--status: {e}")))?;
            }
            let store = need_store()?;
            let filter = store::JobFilter {
                status,
                op,
                org,
                limit: list.limit,
            };
            let rows = store.jobs(&filter).await.map_err(unreachable(&store))?;
            print_rows(&rows, list.json, tables::jobs);
        }
        Command::Sandboxes { list } => {
            let store = need_store()?;
            let rows = store
                .sandboxes(list.limit)
                .await
                .map_err(unreachable(&store))?;
            print_rows(&rows, list.json, tables::sandboxes);
        }
        Command::Schedule { list } => {
            let store = need_store()?;
            let rows = store
                .scheduler_runs(list.limit)
                .await
                .map_err(unreachable(&store))?;
            print_rows(&rows, list.json, tables::schedule);
        }
        Command::Orgs { command, json } => {
            let store = need_store()?;
            if let Some(OrgsCommand::SetBudget { org, usd }) = command {
                let budget = if usd.eq_ignore_ascii_case("none") {
                    None
                } else {
                    Some(
                        usd.parse::<f64>()
                            .ok()
                            .filter(|u| u.is_finite() && *u >= 0.0)
                            .ok_or_else(|| {
                                Fail::Invalid(format!("usd: {usd:?} is not a number >= 0 or none"))
                            })?,
                    )
                };
                store
                    .set_budget(&org, budget)
                    .await
                    .map_err(unreachable(&store))?;
                let row = store.org(&org).await.map_err(unreachable(&store))?;
                print(&serde_json::to_value(row).expect("plain data"));
                return Ok(0);
            }
            let rows = store.orgs().await.map_err(unreachable(&store))?;
            print_rows(&rows, json, tables::orgs);
        }
        Command::Migrate => {
            let store = need_store()?;
            store.migrate().await.map_err(unreachable(&store))?;
            print(&json!({"migrated": true, "database": store.redacted_url()}));
        }
        _ => unreachable!("only record commands come here"),
    }
    Ok(0)
}

/// A job's record from Redis, with its history from Postgres when there is one; from
/// Postgres alone once Redis has let the record expire.
async fn show_job(id: &str, wait: Wait) -> Result<u8, Fail> {
    let client = connect().await?;
    let record = if wait.wait {
        client.wait(id, secs("--timeout", wait.timeout)?).await?
    } else {
        client.job(id).await?
    };
    let history = match client.store() {
        Some(store) => match store.job_history(id).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!(
                    "gitfleet: no history: cannot read the record at {}: {e}",
                    store.redacted_url()
                );
                None
            }
        },
        None => None,
    };
    let (mut out, status) = match (&record, &history) {
        (Some(r), _) => (r.to_cli_json(), r.status),
        (None, Some(h)) => {
            let j = &h.job;
            let mut v = json!({
                "job_id": j.job_id,
                "op": j.op,
                "status": j.status,
                "attempts": j.attempts,
                "enqueued_at": gitfleet_contract::fmt_time(j.enqueued_at),
                "started_at": gitfleet_contract::fmt_time(j.started_at),
                "finished_at": gitfleet_contract::fmt_time(j.finished_at),
            });
            let map = v.as_object_mut().expect("object literal");
            match &j.error_kind {
                Some(kind) => map.insert(
                    "error".into(),
                    json!({"kind": kind, "message": j.error_message}),
                ),
                None => map.insert("result".into(), j.result.clone().unwrap_or(Value::Null)),
            };
            (v, j.status.parse().unwrap_or(JobStatus::Waiting))
        }
        (None, None) => {
            return Err(Fail::Invalid(format!(
                "no job {id}: it never existed or its record has expired"
            )));
        }
    };
    if let Some(h) = history {
        out.as_object_mut().expect("an object").insert(
            "history".into(),
            serde_json::to_value(h).expect("plain data"),
        );
    }
    print(&out);
    Ok(match status {
        JobStatus::Done => 0,
        JobStatus::Dead => 1,
        _ if wait.wait => 3,
        _ => 0,
    })
}

async fn run(cli: Cli) -> Result<u8, Fail> {
    match cli.command {
        Command::Submit(s) if s.bulk => submit_bulk(s).await,
        Command::Submit(s) => submit_one(s).await,
        Command::Job { id, wait } => show_job(&id, wait).await,
        cmd @ (Command::Jobs { .. }
        | Command::Sandboxes { .. }
        | Command::Orgs { .. }
        | Command::Schedule { .. }
        | Command::Migrate) => history(cmd).await,
        Command::Queues => {
            let client = connect().await?;
            let stats = client.queues().await?;
            print(&serde_json::to_value(stats).expect("plain data"));
            Ok(0)
        }
        Command::Demo => demo().await,
        Command::Retry { id } => {
            let client = connect().await?;
            client.retry(&id).await?;
            match client.job(&id).await? {
                Some(r) => Ok(report(&r, false)),
                None => Ok(0),
            }
        }
    }
}

async fn demo() -> Result<u8, Fail> {
    let config = QueueConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    eprintln!(
        "gitfleet demo: a git server, two workers and ten agents, on Redis at {} ...",
        config.redacted_url()
    );
    // An explicit URL that does not answer is an error; the default one gets a private
    // redis-server instead.
    let source = UrlSource::of_env_value(std::env::var("GITFLEET_REDIS_URL").ok().as_deref());
    let r = demo::run(config, source).await.map_err(Fail::Unreachable)?;
    println!(
        "{:<6} {:<34} {:>6} {:>9} {:>9} {:>9}  {:<18} {:<10} {:>7}",
        "agent",
        "worker",
        "cached",
        "clone ms",
        "write ms",
        "push ms",
        "branch",
        "commit",
        "rebased"
    );
    let mut agents = r.agents.clone();
    agents.sort_by_key(|a| a.agent);
    for a in &agents {
        println!(
            "{:<6} {:<34} {:>6} {:>9.1} {:>9.1} {:>9.1}  {:<18} {:<10} {:>7}",
            a.agent,
            a.worker,
            a.cache_hit,
            a.clone_ms,
            a.write_ms,
            a.push_ms,
            a.branch,
            a.commit,
            a.rebased
        );
    }
    for f in &r.failures {
        println!("failed: {f}");
    }
    println!(
        "\n{} of 10 agents pushed in {:.0} ms; the shared branch got {} commits from {} agents (each once, none forced).",
        r.agents.len(),
        r.elapsed.as_secs_f64() * 1e3,
        r.shared_commits,
        r.shared_agents
    );
    Ok(
        if r.failures.is_empty() && r.shared_commits == r.shared_agents {
            0
        } else {
            1
        },
    )
}

async fn submit_one(s: Submit) -> Result<u8, Fail> {
    let op = s.op.unwrap_or_default();
    let args: Value = match s.args.as_deref() {
        None => json!({}),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Fail::Invalid(format!("args: not valid JSON: {e}")))?,
    };
    let spec = JobSpec::new(op, args);
    let options = EnqueueOptions {
        delay: s.delay.map(|d| secs("--delay", d)).transpose()?,
        idempotency_key: s.idempotency_key,
        max_attempts: s.max_attempts,
        timeout: None,
    };
    let client = connect().await?;
    let queue = s.queue.clone().unwrap_or_else(|| Client::route(&spec));
    let enqueued = client.submit(&queue, &spec, &options).await?;
    let record = if s.wait.wait {
        client
            .wait(&enqueued.job_id, secs("--timeout", s.wait.timeout)?)
            .await?
    } else {
        client.job(&enqueued.job_id).await?
    };
    match record {
        Some(r) => Ok(report(&r, s.wait.wait)),
        None => Err(Fail::Unreachable(format!(
            "job {} was enqueued but its record is gone",
            enqueued.job_id
        ))),
    }
}

async fn submit_bulk(s: Submit) -> Result<u8, Fail> {
    let mut specs = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| Fail::Invalid(format!("standard input: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let spec: JobSpec = serde_json::from_str(&line).map_err(|e| {
            Fail::Invalid(format!(
                "line {}: not a {{\"op\", \"args\"}} object: {e}",
                i + 1
            ))
        })?;
        specs.push((i + 1, spec));
    }
    let options = EnqueueOptions {
        delay: s.delay.map(|d| secs("--delay", d)).transpose()?,
        max_attempts: s.max_attempts,
        ..Default::default()
    };
    let client = connect().await?;
    for (line, spec) in &specs {
        client.check(spec).map_err(|e| match Fail::from(e) {
            Fail::Invalid(m) => Fail::Invalid(format!("line {line}: {m}")),
            other => other,
        })?;
    }
    let only_specs: Vec<JobSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for chunk in only_specs.chunks(1000) {
        for r in client
            .queue()
            .enqueue_many(s.queue.as_deref().unwrap_or(DEFAULT_QUEUE), chunk, &options)
            .await?
        {
            match r {
                Ok(e) => {
                    let _ = writeln!(out, "{}", e.job_id);
                }
                Err(e) => {
                    code = 2;
                    let _ = writeln!(
                        out,
                        "{}",
                        error_object(ErrorKind::InvalidInput, &e.to_string())
                    );
                }
            }
        }
    }
    Ok(code)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            if matches!(
                e.kind(),
                K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(
                    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            let first = e.to_string();
            let first = first
                .lines()
                .next()
                .unwrap_or("bad usage")
                .trim_start_matches("error: ");
            print(&error_object(ErrorKind::InvalidInput, first));
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(Fail::Invalid(message)) => {
            print(&error_object(ErrorKind::InvalidInput, &message));
            ExitCode::from(2)
        }
        Err(Fail::Refused(error)) => {
            print(&json!({ "error": error }));
            ExitCode::from(5)
        }
        Err(Fail::Unreachable(message)) => {
            print(&error_object(ErrorKind::Network, &message));
            ExitCode::from(4)
        }
    }
}
