//! `gitfleet`: submit jobs, read them back, look at the queues.
//!
//! Every command prints JSON on standard output. Exit codes: 0 done (or accepted, without
//! `--wait`), 1 dead, 2 bad usage or invalid input, 3 `--wait` timed out, 4 the queue
//! (Redis) could not be reached.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gitfleet_client::{
    Client, DEFAULT_QUEUE, EnqueueOptions, ErrorKind, JobError, JobRecord, JobSpec, JobStatus,
    QueueConfig, QueueError,
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
    /// Print a job's record (optionally waiting for it to finish).
    Job {
        id: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Print counts for every queue.
    Queues,
    /// Send a dead job back to its queue with a fresh set of attempts.
    Retry { id: String },
    /// gitfleet's main job on this machine: a local git server, two workers, ten agents
    /// through clone, write_files and push; prints a summary.
    Demo,
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
}

impl From<QueueError> for Fail {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(err) => Fail::Invalid(err.message),
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
    Client::connect(config)
        .await
        .map_err(|e| Fail::Unreachable(format!("cannot reach the queue at {url}: {e}")))
}

async fn run(cli: Cli) -> Result<u8, Fail> {
    match cli.command {
        Command::Submit(s) if s.bulk => submit_bulk(s).await,
        Command::Submit(s) => submit_one(s).await,
        Command::Job { id, wait } => {
            let client = connect().await?;
            let record = if wait.wait {
                client.wait(&id, secs("--timeout", wait.timeout)?).await?
            } else {
                client.job(&id).await?
            };
            match record {
                Some(r) => Ok(report(&r, wait.wait)),
                None => Err(Fail::Invalid(format!(
                    "no job {id}: it never existed or its record has expired"
                ))),
            }
        }
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
    let r = gitfleet_client::demo::run(config)
        .await
        .map_err(Fail::Unreachable)?;
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
        Err(Fail::Unreachable(message)) => {
            print(&error_object(ErrorKind::Network, &message));
            ExitCode::from(4)
        }
    }
}
