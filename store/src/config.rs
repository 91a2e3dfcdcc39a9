//! Where the durable record lives (Postgres) and how budgets are metered.

use std::time::Duration;

use gitfleet_contract::Redactor;
use gitfleet_contract::config::{ConfigError, parse_var, secs_var, string_var};

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
            return Err(ConfigError::new(
                "GITFLEET_SANDBOX_HOUR_USD",
                "must be a number >= 0",
            ));
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
            Some(url) => Redactor::default().redact(url),
            None => "none".into(),
        }
    }
}
