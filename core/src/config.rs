//! Configuration, read from the environment by the binaries (never behind a library
//! caller's back: libraries take these structs).
//!
//! Every variable, its default and its meaning is listed in README.md.

use std::env;
use std::str::FromStr;
use std::time::Duration;

/// A configuration value that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn parse_var<T: FromStr>(var: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env::var(var) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e| ConfigError {
            var,
            message: format!("cannot parse {v:?}: {e}"),
        }),
        _ => Ok(default),
    }
}

fn string_var(var: &'static str, default: &str) -> String {
    env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn secs_var(var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parse_var::<f64>(var, default.as_secs_f64()).and_then(|s| {
        Duration::try_from_secs_f64(s).map_err(|e| ConfigError {
            var,
            message: e.to_string(),
        })
    })
}

/// How producers and workers reach the queue and how long it keeps things.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `GITFLEET_REDIS_URL`, default `redis://127.0.0.1:6379`. May carry a password; it is
    /// never printed (see [`QueueConfig::redacted_url`]).
    pub redis_url: String,
    /// `GITFLEET_KEY_PREFIX`, default `gitfleet:`. Every key the queue writes starts with it;
    /// tests use one of their own so they can run side by side.
    pub key_prefix: String,
    /// `GITFLEET_RESULT_TTL_SECS`, default 86 400 (a day): how long a finished job's record
    /// and result are kept for waiters and `gitfleet job`.
    pub result_ttl: Duration,
    /// `GITFLEET_DEAD_TTL_SECS`, default 604 800 (a week): how long a dead job is kept, to be
    /// read or retried by hand.
    pub dead_ttl: Duration,
    /// `GITFLEET_IDEMPOTENCY_TTL_SECS`, default 86 400: how long an idempotency key maps to
    /// its first job.
    pub idempotency_ttl: Duration,
    /// `GITFLEET_MAX_PAYLOAD_BYTES`, default 1 MiB: the largest job (op + args) accepted.
    pub max_payload_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "gitfleet:".into(),
            result_ttl: Duration::from_secs(86_400),
            dead_ttl: Duration::from_secs(7 * 86_400),
            idempotency_ttl: Duration::from_secs(86_400),
            max_payload_bytes: 1 << 20,
        }
    }
}

impl QueueConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            redis_url: string_var("GITFLEET_REDIS_URL", &d.redis_url),
            key_prefix: string_var("GITFLEET_KEY_PREFIX", &d.key_prefix),
            result_ttl: secs_var("GITFLEET_RESULT_TTL_SECS", d.result_ttl)?,
            dead_ttl: secs_var("GITFLEET_DEAD_TTL_SECS", d.dead_ttl)?,
            idempotency_ttl: secs_var("GITFLEET_IDEMPOTENCY_TTL_SECS", d.idempotency_ttl)?,
            max_payload_bytes: parse_var("GITFLEET_MAX_PAYLOAD_BYTES", d.max_payload_bytes)?,
        })
    }

    /// The Redis URL with any password replaced, for logs and errors (through the one
    /// redaction function, [`crate::git::Redactor`]).
    pub fn redacted_url(&self) -> String {
        crate::git::Redactor::default().redact(&self.redis_url)
    }
}

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `GITFLEET_CONCURRENCY`, default 10: jobs run at once from the shared queue.
    pub concurrency: usize,
    /// `GITFLEET_OWN_QUEUE_CONCURRENCY`, default 10: jobs run at once from the worker's own
    /// queue (`worker:<id>`, ops on its sandboxes).
    pub own_queue_concurrency: usize,
    /// `GITFLEET_QUEUES`, default `jobs`: the shared queues served, comma-separated.
    pub queues: Vec<String>,
    /// `GITFLEET_GRACE_SECS`, default 25: on SIGTERM, how long running jobs may take to
    /// finish before the worker gives them back to the queue and exits.
    pub grace_period: Duration,
    /// `GITFLEET_HEARTBEAT_SECS`, default 2.
    pub heartbeat_interval: Duration,
    /// `GITFLEET_DEAD_AFTER_SECS`, default 15: a worker silent this long is taken for dead;
    /// its jobs go back to the queue. Must be well above the heartbeat interval.
    pub dead_after: Duration,
    /// `GITFLEET_RETRY_BASE_MS`, default 1 000: the first retry's delay; each next one
    /// doubles, with jitter, up to `GITFLEET_RETRY_MAX_MS` (default 300 000).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `GITFLEET_WORKER_NAME`, default the host name: the stem of the worker id
    /// (`<stem>-<ulid>`, unique per process).
    pub name_stem: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 10,
            own_queue_concurrency: 10,
            queues: vec!["jobs".into()],
            grace_period: Duration::from_secs(25),
            heartbeat_interval: Duration::from_secs(2),
            dead_after: Duration::from_secs(15),
            retry_base: Duration::from_millis(1000),
            retry_max: Duration::from_millis(300_000),
            name_stem: hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "worker".into()),
        }
    }
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let queues: Vec<String> = string_var("GITFLEET_QUEUES", "jobs")
            .split(',')
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .collect();
        for q in &queues {
            crate::queue::validate_queue_name(q).map_err(|e| ConfigError {
                var: "GITFLEET_QUEUES",
                message: e.message,
            })?;
        }
        let cfg = Self {
            concurrency: parse_var("GITFLEET_CONCURRENCY", d.concurrency)?,
            own_queue_concurrency: parse_var(
                "GITFLEET_OWN_QUEUE_CONCURRENCY",
                d.own_queue_concurrency,
            )?,
            queues,
            grace_period: secs_var("GITFLEET_GRACE_SECS", d.grace_period)?,
            heartbeat_interval: secs_var("GITFLEET_HEARTBEAT_SECS", d.heartbeat_interval)?,
            dead_after: secs_var("GITFLEET_DEAD_AFTER_SECS", d.dead_after)?,
            retry_base: Duration::from_millis(parse_var("GITFLEET_RETRY_BASE_MS", 1000u64)?),
            retry_max: Duration::from_millis(parse_var("GITFLEET_RETRY_MAX_MS", 300_000u64)?),
            name_stem: string_var("GITFLEET_WORKER_NAME", &d.name_stem),
        };
        if cfg.concurrency == 0 {
            return Err(ConfigError {
                var: "GITFLEET_CONCURRENCY",
                message: "must be at least 1".into(),
            });
        }
        if cfg.dead_after < cfg.heartbeat_interval * 3 {
            return Err(ConfigError {
                var: "GITFLEET_DEAD_AFTER_SECS",
                message: "must be at least three heartbeat intervals".into(),
            });
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_url_is_printed_without_its_password() {
        let url = |u: &str| QueueConfig {
            redis_url: u.into(),
            ..Default::default()
        };
        assert_eq!(
            url("redis://:s3cret@host:6379/0").redacted_url(),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            url("redis://user:s3cret@host").redacted_url(),
            "redis://***@host"
        );
        assert_eq!(
            url("redis://127.0.0.1:6379").redacted_url(),
            "redis://127.0.0.1:6379"
        );
    }
}

/// How a worker runs git and keeps sandboxes.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// `GITFLEET_SANDBOX_ROOT`, default `<temp dir>/gitfleet/<worker id>`: mirrors, sandboxes
    /// and git's controlled HOME live under it.
    pub sandbox_root: Option<std::path::PathBuf>,
    /// `GITFLEET_GIT_ALLOW_FILE`, default false: allow `file://` repositories (tests, demo).
    pub allow_file_protocol: bool,
    /// `GITFLEET_GIT_TIMEOUT_SECS`, default 300: time limit of one git process.
    pub timeout: Duration,
    /// `GITFLEET_POOL_MIN` (default 2) and `GITFLEET_POOL_MAX` (default 16).
    pub pool_min: usize,
    pub pool_max: usize,
    /// `GITFLEET_GIT_CREDENTIALS`: whitespace- or comma-separated `host[:port]=user:token`.
    /// Never printed.
    pub credentials: crate::git::Credentials,
}

impl GitSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut credentials = crate::git::Credentials::default();
        if let Ok(list) = env::var("GITFLEET_GIT_CREDENTIALS") {
            for entry in list
                .split([',', ' ', '\n'])
                .filter(|e| !e.trim().is_empty())
            {
                let bad = || ConfigError {
                    var: "GITFLEET_GIT_CREDENTIALS",
                    message: "each entry must be host[:port]=user:token (values not shown)".into(),
                };
                let (host, secret) = entry.trim().split_once('=').ok_or_else(bad)?;
                let (user, token) = secret.split_once(':').ok_or_else(bad)?;
                if host.is_empty() || token.is_empty() {
                    return Err(bad());
                }
                credentials.insert(host, crate::git::Credential::new(user, token));
            }
        }
        Ok(Self {
            sandbox_root: env::var("GITFLEET_SANDBOX_ROOT")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(Into::into),
            allow_file_protocol: parse_var("GITFLEET_GIT_ALLOW_FILE", false)?,
            timeout: secs_var("GITFLEET_GIT_TIMEOUT_SECS", Duration::from_secs(300))?,
            pool_min: parse_var("GITFLEET_POOL_MIN", 2)?,
            pool_max: parse_var("GITFLEET_POOL_MAX", 16)?,
            credentials,
        })
    }

    /// The directory every worker of this machine keeps its root under (`<root>/<worker
    /// id>`), and the record writer its spool (`<root>/spool`).
    pub fn base_root(&self) -> std::path::PathBuf {
        self.sandbox_root
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("gitfleet"))
    }

    /// Sets up git and the sandboxes of worker `worker_id`.
    pub async fn sandboxes(
        &self,
        worker_id: &str,
    ) -> Result<std::sync::Arc<crate::sandbox::SandboxManager>, crate::job::JobError> {
        let root = self.base_root().join(worker_id);
        let git = crate::git::Git::new(crate::git::GitConfig {
            git_bin: "git".into(),
            home: root.join("home"),
            allow_file_protocol: self.allow_file_protocol,
            timeout: self.timeout,
            max_output: 4 << 20,
            credentials: self.credentials.clone(),
        })
        .await?;
        let mut config = crate::sandbox::SandboxConfig::new(root);
        config.pool_min = self.pool_min;
        config.pool_max = self.pool_max.max(self.pool_min);
        config.allow_file_protocol = self.allow_file_protocol;
        crate::sandbox::SandboxManager::new(worker_id, git, config).await
    }
}

/// Where the durable record lives (Postgres) and how budgets are metered.
#[derive(Clone)]
pub struct StoreConfig {
    /// `GITFLEET_DATABASE_URL`, default `postgres://127.0.0.1:5432/postgres` (the local
    /// server, as the current user or `PGUSER`). `none` turns the record off: workers run
    /// without history, registry or budgets. May carry a password; it is never printed
    /// (see [`StoreConfig::redacted_url`]).
    pub database_url: Option<String>,
    /// `GITFLEET_SANDBOX_HOUR_USD`, default 0.015: what one hour of one sandbox costs an
    /// organization.
    pub sandbox_hour_usd: f64,
    /// `GITFLEET_BUDGET_REFRESH_SECS`, default 5: how often a worker re-reads which
    /// organizations are over budget (it checks jobs against that list, never waiting on
    /// Postgres in the job path).
    pub budget_refresh: Duration,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("database_url", &self.redacted_url())
            .field("sandbox_hour_usd", &self.sandbox_hour_usd)
            .field("budget_refresh", &self.budget_refresh)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: Some("postgres://127.0.0.1:5432/postgres".into()),
            sandbox_hour_usd: 0.015,
            budget_refresh: Duration::from_secs(5),
        }
    }
}

impl StoreConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let url = string_var(
            "GITFLEET_DATABASE_URL",
            d.database_url.as_deref().unwrap_or_default(),
        );
        let sandbox_hour_usd = parse_var("GITFLEET_SANDBOX_HOUR_USD", d.sandbox_hour_usd)?;
        if !(sandbox_hour_usd.is_finite() && sandbox_hour_usd >= 0.0) {
            return Err(ConfigError {
                var: "GITFLEET_SANDBOX_HOUR_USD",
                message: "must be a number >= 0".into(),
            });
        }
        Ok(Self {
            database_url: (!url.eq_ignore_ascii_case("none")).then_some(url),
            sandbox_hour_usd,
            budget_refresh: secs_var("GITFLEET_BUDGET_REFRESH_SECS", d.budget_refresh)?,
        })
    }

    /// The database URL with any password replaced, for logs and errors.
    pub fn redacted_url(&self) -> String {
        match &self.database_url {
            Some(url) => crate::git::Redactor::default().redact(url),
            None => "none".into(),
        }
    }
}
