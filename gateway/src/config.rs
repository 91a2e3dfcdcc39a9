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
    /// The dashboard's settings (`GITFLEET_GATEWAY_UI_*`).
    pub ui: UiConfig,
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
            ui: UiConfig::from_env()?,
            queue: QueueConfig::from_env()?,
            store: StoreConfig::from_env()?,
            limits: JobLimits::from_env()?,
        })
    }
}

/// The dashboard (`/ui`, docs/dashboard.md).
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// `GITFLEET_GATEWAY_UI_BASE`, default `/ui`: the path browsers reach the dashboard at.
    /// Every link, form and the session cookie's path start with it. Behind a proxy that
    /// serves the gateway under a prefix, set it to `<prefix>/ui`: the gateway answers the
    /// dashboard there and at `/ui` both, so a proxy that strips the prefix works as well
    /// as one that passes the path on.
    pub base: String,
    /// `GITFLEET_GATEWAY_UI_SESSION_HOURS`, default 12: how long a sign-in lasts (never past
    /// its key's expiry; a revoked key ends its sessions at once).
    pub session_ttl: Duration,
    /// `GITFLEET_GATEWAY_UI_LIVE_MS`, default 1000: how often live pages are updated (one set
    /// of queries per interval per gateway, however many pages are open).
    pub live_interval: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            base: "/ui".into(),
            session_ttl: Duration::from_secs(12 * 3600),
            live_interval: Duration::from_secs(1),
        }
    }
}

impl UiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let base = check_base(&string_var("GITFLEET_GATEWAY_UI_BASE", "/ui"))
            .map_err(|why| ConfigError::new("GITFLEET_GATEWAY_UI_BASE", why))?;
        let hours = parse_var("GITFLEET_GATEWAY_UI_SESSION_HOURS", 12.0f64)?;
        if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 90.0) {
            return Err(ConfigError::new(
                "GITFLEET_GATEWAY_UI_SESSION_HOURS",
                format!("{hours} is not a number of hours above 0 and at most 2160 (90 days)"),
            ));
        }
        let live_ms = parse_var("GITFLEET_GATEWAY_UI_LIVE_MS", 1000u64)?;
        if !(100..=60_000).contains(&live_ms) {
            return Err(ConfigError::new(
                "GITFLEET_GATEWAY_UI_LIVE_MS",
                format!("{live_ms} is not from 100 to 60000 milliseconds"),
            ));
        }
        Ok(Self {
            base,
            session_ttl: Duration::from_secs_f64(hours * 3600.0),
            live_interval: Duration::from_millis(live_ms),
        })
    }
}

/// A dashboard base path: `/` and one or more segments of letters, digits, `-`, `_`, `.`,
/// without a trailing `/` (`/ui`, `/gitfleet/ui`).
pub fn check_base(base: &str) -> Result<String, String> {
    let trimmed = base.trim().trim_end_matches('/');
    let ok = trimmed.starts_with('/')
        && trimmed.len() <= 200
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "{base:?} is not a path like /ui or /gitfleet/ui (segments of letters, digits, \
             '-', '_', '.'; not / alone)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_base;

    #[test]
    fn a_base_path_is_checked() {
        assert_eq!(check_base("/ui").unwrap(), "/ui");
        assert_eq!(check_base("/gitfleet/ui/").unwrap(), "/gitfleet/ui");
        for bad in [
            "", "/", "ui", "/a//b", "/a/../b", "/a b", "/a?x", "/\"\"", "/é",
        ] {
            assert!(check_base(bad).is_err(), "{bad:?}");
        }
    }
}
