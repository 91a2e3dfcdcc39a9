//! The scheduler's configuration, read from the environment by the binary (the library
//! never reads it by itself). Every schedule is a cron expression with seconds, in UTC
//! (`sec min hour day-of-month month day-of-week [year]`, as the `cron` crate that
//! apalis-cron uses reads it), or `off`.

use std::str::FromStr;
use std::time::Duration;

pub use gitfleet_contract::config::ConfigError;
pub(crate) use gitfleet_contract::config::{millis_var, parse_var, secs_var, var};

use crate::tasks::{
    cleanup::CleanupConfig, eviction::EvictionConfig, health_check::HealthCheckConfig,
    priority::PriorityConfig, retention::RetentionConfig, template_rebuild::TemplateConfig,
};

/// A task's schedule: a cron expression (checked), or off.
#[derive(Debug, Clone)]
pub struct Schedule(Option<cron::Schedule>);

impl Schedule {
    /// Parses `expr` (`off` turns the task off).
    pub fn parse(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        if expr.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        cron::Schedule::from_str(expr)
            .map(|s| Self(Some(s)))
            .map_err(|e| format!("not a cron expression ({e}): {expr:?}"))
    }

    /// A default known to parse.
    pub(crate) fn fixed(expr: &str) -> Self {
        Self::parse(expr).expect("a valid default schedule")
    }

    /// The cron schedule, or `None` when the task is off.
    pub fn cron(&self) -> Option<&cron::Schedule> {
        self.0.as_ref()
    }

    /// Reads `var`, else `default`.
    pub(crate) fn from_env(var: &'static str, default: &str) -> Result<Self, ConfigError> {
        match self::var(var) {
            Some(v) => Self::parse(&v).map_err(|message| ConfigError { var, message }),
            None => Ok(Self::fixed(default)),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "{s}"),
            None => f.write_str("off"),
        }
    }
}

/// Everything the scheduler is told.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// `GITFLEET_SCHEDULER_REPLICA`, default `<host>-<ulid>`: this replica's id in
    /// `scheduler_runs`.
    pub replica: String,
    /// `GITFLEET_SCHEDULER_LEADER_CHECK_MS`, default 2000: how often the leader checks that
    /// it still holds its lock, and how often the others try to take it. A replica that dies
    /// is replaced within about this long (its connection closing frees the lock).
    pub leader_check: Duration,
    /// `GITFLEET_SCHEDULER_WAIT_SECS`, default 120: how long a task waits for the workers
    /// to answer its `maintain` jobs (an unanswered job is reported, and sent again on the
    /// next tick). The template rebuild waits up to its own, longer limit.
    pub maintenance_wait: Duration,
    pub eviction: EvictionConfig,
    pub priority: PriorityConfig,
    pub health_check: HealthCheckConfig,
    pub cleanup: CleanupConfig,
    pub template: TemplateConfig,
    pub retention: RetentionConfig,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            replica: gitfleet_core::runtime::new_worker_id("scheduler"),
            leader_check: Duration::from_secs(2),
            maintenance_wait: Duration::from_secs(120),
            eviction: EvictionConfig::default(),
            priority: PriorityConfig::default(),
            health_check: HealthCheckConfig::default(),
            cleanup: CleanupConfig::default(),
            template: TemplateConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl SchedulerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let stem = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "scheduler".into());
        let replica = match var("GITFLEET_SCHEDULER_REPLICA") {
            Some(r) => r.trim().to_string(),
            None => gitfleet_core::runtime::new_worker_id(&format!("{stem}-scheduler")),
        };
        Ok(Self {
            replica,
            leader_check: millis_var(
                "GITFLEET_SCHEDULER_LEADER_CHECK_MS",
                Duration::from_millis(2000),
            )?,
            maintenance_wait: secs_var("GITFLEET_SCHEDULER_WAIT_SECS", Duration::from_secs(120))?,
            eviction: EvictionConfig::from_env()?,
            priority: PriorityConfig::from_env()?,
            health_check: HealthCheckConfig::from_env()?,
            cleanup: CleanupConfig::from_env()?,
            template: TemplateConfig::from_env()?,
            retention: RetentionConfig::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_cron_expressions_with_seconds_or_off() {
        assert!(Schedule::parse("* * * * * *").unwrap().cron().is_some());
        assert!(Schedule::parse("0 0 2 * * SUN").unwrap().cron().is_some());
        assert!(Schedule::parse("off").unwrap().cron().is_none());
        let err = Schedule::parse("every minute").unwrap_err();
        assert!(err.contains("not a cron expression"), "{err}");
    }

    #[test]
    fn the_weekly_rebuild_fires_on_sunday_at_two_utc() {
        use chrono::{Datelike, TimeZone, Timelike, Utc, Weekday};
        let config = SchedulerConfig::default();
        let from = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(); // a Wednesday
        let next = config
            .template
            .schedule
            .cron()
            .unwrap()
            .after(&from)
            .next()
            .unwrap();
        assert_eq!(next.weekday(), Weekday::Sun);
        assert_eq!((next.hour(), next.minute(), next.second()), (2, 0, 0));
        assert_eq!(next.day(), 5);
    }
}
