//! `gitfleet`: submit jobs, read them back, look at the queues.
//!
//! Commands on the queue print JSON on standard output; the ones on the durable record
//! (`jobs`, `sandboxes`, `orgs`, `schedule`, `keys list`) print a table, or JSON with
//! `--json`. Exit codes: 0 done (or accepted, without `--wait`; or cancelled by `cancel`),
//! 1 dead, 2 bad usage or invalid input, 3 `--wait` timed out, 4 the queue (Redis) or the
//! record (Postgres) could not be reached, 5 refused: the job's organization is over
//! budget (`budget_exceeded`), 6 the job was cancelled (it never ran: no failure of the
//! job, and no result; what `submit --wait` and `job` of a cancelled job exit with). A
//! conflict (an idempotency key that names another job, cancelling a job that is running
//! or finished) exits 2 with its own kind.
//!
//! `--org` (or `GITFLEET_ORG`) is the identity the CLI acts for; `admin` commands act for
//! the fleet and take none. `keys` manages the gateway's API keys in Postgres (whoever
//! reaches the database is an administrator): there `--org` is the organization a key is
//! made for (`keys create`, which needs one) or listed by (`keys list`). A key's token is
//! printed once, by `keys create`, and never again.
//! `gitfleet mcp` speaks MCP on standard output, so its own
//! failures go to standard error.
//!
//! This file is the command line (its clap schema), the dispatch and the exit codes; each
//! command's body is in [`commands`].

use std::process::ExitCode;
use std::time::Duration;

mod commands;
mod connect;
mod demo;
mod output;
mod private_redis;
mod tables;

use clap::{Args, Parser, Subcommand};
use gitfleet_client::store::{KEY_MAX_DAYS, StoreError};
use gitfleet_client::{ErrorKind, JobError, QueueError};
use gitfleet_contract::Role;
use serde_json::json;

use output::{error_object, print};

/// gitfleet: git jobs for fleets of AI agents.
#[derive(Parser)]
#[command(name = "gitfleet", version, about)]
struct Cli {
    /// The organization you act for (your identity; default `GITFLEET_ORG`): the jobs you
    /// submit carry it, reach only its sandboxes and are charged to it; `jobs` lists its
    /// jobs. Without one, you are a trusted internal producer. For `keys create` and
    /// `keys list`: the organization of the keys.
    #[arg(long, global = true, env = "GITFLEET_ORG", value_name = "ORG")]
    org: Option<String>,
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
        /// waiting, delayed, running, done, dead or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        op: Option<String>,
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
    /// The gateway's API keys (an administrator's commands, on the record): `keys create
    /// --org ORG --role ROLE`, `keys list`, `keys revoke ID`.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print counts for every queue.
    Queues,
    /// The fleet's own operations, for an operator: never on behalf of an organization.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Send a dead job back to its queue with a fresh set of attempts.
    Retry { id: String },
    /// Take a waiting or delayed job out of its queue before it runs; prints its record
    /// (status `cancelled`). A running or finished job is refused (exit 2, `conflict`).
    Cancel { id: String },
    /// gitfleet's main job on this machine: a local git server, two workers, ten agents
    /// through clone, write_files and push; prints a summary.
    Demo,
    /// Serve the git tools (git_clone, git_status, ... git_change) to a local agent over
    /// MCP on standard input and output, for --org / GITFLEET_ORG (required).
    Mcp {
        /// How long each tool call waits for its job, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 120.0)]
        timeout: f64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Send a worker a `maintain` job (what the scheduler sends on cron), e.g.
    /// `gitfleet admin maintain '{"task": "rebuild_template", "worker_id": "<id>"}' --wait`;
    /// tasks: `rebuild_template`, `health_check`, `evict` (with `sandbox_ids`).
    Maintain {
        /// The job's args as a JSON object.
        args: String,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key for the organization of `--org` (or `GITFLEET_ORG`) and print it, once,
    /// as `{"id", "key", "org", "role", "expires_at"}`; `key` is the token callers send.
    Create {
        /// What the key may do: viewer (reads only), producer (also enqueues), operator
        /// (also retries, cancels, releases), admin (every organization, and keys).
        #[arg(long, value_name = "ROLE")]
        role: Role,
        /// What the key is for (at most 100 printable characters).
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// Days until the key expires, a whole number from 1 to 3650 (default: never).
        #[arg(
            long,
            value_name = "DAYS",
            allow_negative_numbers = true,
            value_parser = days
        )]
        expires: Option<u32>,
    },
    /// List keys (of `--org`, or of every organization), newest first: never their tokens.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key for good, by its id.
    Revoke { id: String },
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
    /// Time one run may take, in milliseconds (default: the op's); at most
    /// GITFLEET_JOB_MAX_TIMEOUT_MS (default an hour).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    #[command(flatten)]
    wait: Wait,
}

#[derive(Args)]
struct Wait {
    /// Wait for the job to be done, dead or cancelled before printing.
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
    /// Refused for another reason than bad input (`conflict`); exit 2, with its kind.
    Rejected(JobError),
}

impl From<QueueError> for Fail {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(err) if err.kind == ErrorKind::BudgetExceeded => Fail::Refused(err),
            QueueError::Invalid(err) if err.kind == ErrorKind::InvalidInput => {
                Fail::Invalid(err.message)
            }
            // A refusal of another kind (an idempotency key naming another job: conflict).
            QueueError::Invalid(err) => Fail::Rejected(err),
            other => Fail::Unreachable(other.to_string()),
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Config(m) | StoreError::Invalid { message: m, .. } => Fail::Invalid(m),
            other => Fail::Unreachable(other.to_string()),
        }
    }
}

/// A `DAYS` flag's value: a whole number of days a key may live.
fn days(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|d| (1..=KEY_MAX_DAYS).contains(&i64::from(*d)))
        .ok_or_else(|| format!("must be a whole number of days from 1 to {KEY_MAX_DAYS}"))
}

/// A `SECS` flag's value as a duration.
fn secs(name: &str, v: f64) -> Result<Duration, Fail> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Fail::Invalid(format!("{name}: must be a number of seconds >= 0")))
}

async fn run(cli: Cli) -> Result<u8, Fail> {
    let org = cli.org;
    match cli.command {
        Command::Submit(s) if s.bulk => commands::submit::bulk(s, org).await,
        Command::Submit(s) => commands::submit::one(s, org).await,
        Command::Job { id, wait } => commands::job::show(&id, wait).await,
        Command::Jobs { status, op, list } => commands::record::jobs(status, op, org, list).await,
        Command::Admin {
            command: AdminCommand::Maintain { args, wait },
        } => commands::admin::maintain(&args, wait, org).await,
        Command::Sandboxes { list } => commands::record::sandboxes(list).await,
        Command::Orgs { command, json } => commands::record::orgs(command, json).await,
        Command::Schedule { list } => commands::record::schedule(list).await,
        Command::Migrate => commands::record::migrate().await,
        Command::Keys { command } => commands::keys::run(command, org).await,
        Command::Queues => commands::queues::show().await,
        Command::Demo => commands::demo::run().await,
        Command::Mcp { timeout } => commands::mcp::serve(org, secs("--timeout", timeout)?).await,
        Command::Retry { id } => commands::retry::retry(&id).await,
        Command::Cancel { id } => commands::cancel::cancel(&id).await,
    }
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
            // clap's first paragraph: the error, and what it lists (the missing arguments).
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = first.join(" ");
            let message = message.trim_start_matches("error: ");
            let message = if message.is_empty() {
                "bad usage"
            } else {
                message
            };
            print(&error_object(ErrorKind::InvalidInput, message));
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    // `gitfleet mcp`'s standard output is the protocol's: its failures go to stderr.
    let print: fn(&serde_json::Value) = if matches!(cli.command, Command::Mcp { .. }) {
        output::eprint
    } else {
        print
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
        Err(Fail::Rejected(error)) => {
            print(&json!({ "error": error }));
            ExitCode::from(2)
        }
        Err(Fail::Unreachable(message)) => {
            print(&error_object(ErrorKind::Network, &message));
            ExitCode::from(4)
        }
    }
}
