//! gitfleet-store: the durable record in Postgres: job history, the sandbox registry, workers, organizations
//! and their sandbox-hour budgets, the scheduler's runs, the API keys, the dashboard's sessions (tables in `migrations/`).
//!
//! Redis stays the bus; nothing in the job path waits on Postgres. Workers hand [`Record`]s
//! to a background [`writer`] that batches them, keeps them (in memory, then in a spool file)
//! while Postgres is away, and writes them when it is back. Every write is an idempotent,
//! ordered upsert, so a record written twice, or late, changes nothing.
//!
//! Queries are checked at compile time against the offline data in `.sqlx/` (see README.md,
//! "Changing a query").

mod audit;
mod budget;
mod config;
mod dashboard;
mod history;
mod keys;
mod record;
mod repos;
mod usage;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use audit::{AUDIT_MAX_JOB_IDS, AuditEntry, AuditFilter, AuditPage};
pub use budget::{Budgets, CheckError, OrgSpend, budget_exceeded, exempt_from_budget};
pub use config::StoreConfig;
pub use dashboard::{
    JobChange, MinuteCount, PickupLatency, SandboxCounts, is_token, random_token, session_hash,
};
pub use history::{
    CursorError, EXACT_COUNT_MAX, JobCount, JobCursor, JobFilter, JobHistory, JobPage, JobRow,
    JobSort, RunRow, SandboxFilter, SandboxRow, SchedulerRun,
};
pub use keys::{ApiKey, KEY_MAX_DAYS, NewKey, parse_token};
pub use record::{
    DeletedJob, JobEvent, Record, RepoStatsDelta, RepoStatsFlush, SandboxEvent, SandboxOrigin,
    SandboxSource, SandboxStatus, WorkerEvent,
};
pub use repos::{
    HitRate, HitRates, RepoCursor, RepoFilter, RepoPage, RepoSort, RepoWorker, RepositoryRow,
};
pub use usage::record_sandbox_usage;
pub use writer::{Recorder, RunToken, WriterHandle};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// What can go wrong with the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value given to the store is wrong; `message` names `field` and says why.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The operating system's random source failed (making a key's secret).
    #[error("the operating system's random source: {0}")]
    Random(String),
}

/// A handle on the Postgres record. Cheap to clone; connects lazily, so a worker starts
/// (and runs jobs) while Postgres is down.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    options: PgConnectOptions,
    sandbox_hour_usd: f64,
    redacted_url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.redacted_url)
            .finish()
    }
}

impl Store {
    /// A store for `config`, or `None` when the record is turned off
    /// (`GITFLEET_DATABASE_URL=none`). Does not connect yet.
    pub fn open(config: &StoreConfig) -> Result<Option<Self>, StoreError> {
        let Some(url) = &config.database_url else {
            return Ok(None);
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                // The parse error may quote the URL: say only what is wrong, redacted.
                StoreError::Config(gitfleet_contract::Redactor::default().redact(&e.to_string()))
            })?
            .application_name("gitfleet")
            // Statements are small; one stuck longer than this is a broken connection.
            .options([("statement_timeout", "30s")]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            // Fail fast when Postgres is away; the writer retries with backoff.
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options.clone());
        Ok(Some(Self {
            pool,
            options,
            sandbox_hour_usd: config.sandbox_hour_usd,
            redacted_url: config.redacted_url(),
        }))
    }

    /// The database URL with any password replaced.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// What one sandbox-hour costs.
    pub fn sandbox_hour_usd(&self) -> f64 {
        self.sandbox_hour_usd
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations not yet applied. Safe from any number of processes at once:
    /// sqlx's migrator takes a Postgres advisory lock (`pg_advisory_lock`, keyed by the
    /// database name) before it reads `_sqlx_migrations`, and holds it to the end. It runs
    /// on a connection of its own, closed afterwards: should a migration fail, sqlx returns
    /// without unlocking, and only closing the session frees the lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = sqlx::PgConnection::connect_with(&self.options).await?;
        // `run_direct` is `run` on a connection (sqlx's own note: `run` on `&mut
        // PgConnection` trips "Acquire is not general enough" inside spawned tasks).
        let applied = MIGRATOR.run_direct(&mut conn).await;
        let _ = conn.close().await;
        applied?;
        Ok(())
    }

    /// Writes records in one transaction (what the writer does with each batch; the client
    /// uses it directly for the few records it makes).
    ///
    /// Consecutive job records of distinct jobs are written by one statement each for their
    /// rows and their runs' rows ([`record::apply_jobs`]), the rest one by one, in order: a
    /// batch of a thousand enqueued jobs is two round trips, not a thousand.
    pub async fn apply(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut rest = records;
        while let Some(first) = rest.first() {
            let run = record::job_run_len(rest);
            if run > 1 {
                let jobs: Vec<&record::JobEvent> = rest[..run]
                    .iter()
                    .filter_map(|r| match r {
                        Record::Job(j) => Some(j),
                        _ => None,
                    })
                    .collect();
                record::apply_jobs(&mut tx, &jobs, false).await?;
                rest = &rest[run..];
            } else {
                first.apply(&mut tx, self.sandbox_hour_usd).await?;
                rest = &rest[1..];
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A connection of its own, outside the pool: for a session that must stay one session
    /// (the scheduler's leader holds a session advisory lock on it, freed when it closes).
    pub async fn connect_dedicated(&self) -> Result<sqlx::PgConnection, StoreError> {
        let options = self.options.clone().application_name("gitfleet-scheduler");
        Ok(sqlx::PgConnection::connect_with(&options).await?)
    }

    /// Whether Postgres answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
