//! The gateway's configuration, from the environment (README.md's configuration table).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gitfleet_client::ops::JobLimits;
use gitfleet_client::{QueueConfig, StoreConfig};
use gitfleet_contract::config::{ConfigError, parse_var, secs_var, string_var};

/// How one gateway replica serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `GITFLEET_GATEWAY_ADDR`, default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `GITFLEET_GATEWAY_MAX_BODY_BYTES`, default 16 MiB: a larger request body is `413`.
    pub max_body_bytes: usize,
    /// `GITFLEET_GATEWAY_MAX_BULK`, default 1000: jobs in one `POST /v1/jobs` array.
    pub max_bulk: usize,
    /// `GITFLEET_GATEWAY_RATE_PER_SEC`, default 1000: requests per second one API key may
    /// make (sustained; 0 turns the limit off) ...
    pub rate_per_sec: u32,
    /// ... and `GITFLEET_GATEWAY_RATE_BURST`, default twice the rate: how many at once.
    pub rate_burst: u32,
    /// `GITFLEET_GATEWAY_KEY_CACHE_SECS`, default 5: how long a replica trusts a key it has
    /// checked against Postgres; a revoked key stops working within this time.
    pub key_cache: Duration,
    /// `GITFLEET_GATEWAY_SPOOL_DIR`, default none: where the record writer keeps what
    /// Postgres does not take (past 50,000 rows in memory, and at stop), for this or the
    /// next gateway to write once Postgres is back. Unset, rows wait in memory only, and
    /// those a stopping gateway cannot write are lost (their workers still write them
    /// when they run the jobs).
    pub spool_dir: Option<PathBuf>,
    pub queue: QueueConfig,
    pub store: StoreConfig,
    /// The per-job limits jobs are checked by (the workers' `GITFLEET_JOB_MAX_*`).
    pub limits: JobLimits,
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let addr = string_var("GITFLEET_GATEWAY_ADDR", "127.0.0.1:8080");
        let addr = addr.parse().map_err(|e| {
            ConfigError::new(
                "GITFLEET_GATEWAY_ADDR",
                format!("{addr:?} is not an address and port: {e}"),
            )
        })?;
        let rate_per_sec = parse_var("GITFLEET_GATEWAY_RATE_PER_SEC", 1000u32)?;
        let max_bulk = parse_var("GITFLEET_GATEWAY_MAX_BULK", 1000usize)?;
        if max_bulk == 0 {
            return Err(ConfigError::new(
                "GITFLEET_GATEWAY_MAX_BULK",
                "must be at least 1",
            ));
        }
        Ok(Self {
            addr,
            max_body_bytes: parse_var("GITFLEET_GATEWAY_MAX_BODY_BYTES", 16 << 20)?,
            max_bulk,
            rate_per_sec,
            rate_burst: parse_var(
                "GITFLEET_GATEWAY_RATE_BURST",
                rate_per_sec.saturating_mul(2),
            )?,
            key_cache: secs_var("GITFLEET_GATEWAY_KEY_CACHE_SECS", Duration::from_secs(5))?,
            spool_dir: std::env::var_os("GITFLEET_GATEWAY_SPOOL_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            queue: QueueConfig::from_env()?,
            store: StoreConfig::from_env()?,
            limits: JobLimits::from_env()?,
        })
    }
}
