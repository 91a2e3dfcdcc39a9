//! What one job may ask for: the bytes and files a `write_files` or `change` writes, the
//! longest `sleep`, the longest run time (`timeout_ms`) and the largest result. Pure rules
//! on a job, so the client refuses early what a worker would refuse: each variable is read
//! by producers and workers alike (a producer left at the defaults checks as a default
//! worker). A sandbox's own disk limits (bytes, files, largest file) need the tree, so they
//! are the worker's (`gitfleet_core::sandbox::SandboxLimits`).

use std::time::Duration;

use crate::config::{ConfigError, parse_var};
use crate::error::JobError;

/// Per-job limits. Every field's variable and default is on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// `GITFLEET_JOB_MAX_WRITE_BYTES`, default 64 MiB: bytes (decoded) one `write_files` or
    /// `change` writes, all its files together. (Each file is at most 16 MiB whatever
    /// this says, and the whole job must also fit `GITFLEET_MAX_PAYLOAD_BYTES`, 1 MiB by
    /// default.)
    pub max_write_bytes: u64,
    /// `GITFLEET_JOB_MAX_WRITE_FILES`, default 10,000: files (written or deleted) in one
    /// `write_files` or `change`.
    pub max_write_files: u64,
    /// `GITFLEET_JOB_MAX_SLEEP_MS`, default 3,600,000 (an hour): the longest `sleep`.
    pub max_sleep_ms: u64,
    /// `GITFLEET_JOB_MAX_TIMEOUT_MS`, default 3,600,000 (an hour): the longest run time a
    /// job may ask for (its `timeout_ms`). An op's own default run time is the worker's
    /// choice and is not capped by it (the longest, `change`, is 15 minutes).
    pub max_timeout_ms: u64,
    /// `GITFLEET_MAX_RESULT_BYTES`, default 8 MiB: the largest result (as JSON) a job may
    /// answer with; a larger one fails the job (`invalid_input`) and nothing of it is
    /// stored. `diff` cuts its text at 4 MiB of git output, so a diff fits.
    pub max_result_bytes: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            max_write_bytes: 64 << 20,
            max_write_files: 10_000,
            max_sleep_ms: 3_600_000,
            max_timeout_ms: 3_600_000,
            max_result_bytes: 8 << 20,
        }
    }
}

impl JobLimits {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_write_bytes: parse_var("GITFLEET_JOB_MAX_WRITE_BYTES", d.max_write_bytes)?,
            max_write_files: parse_var("GITFLEET_JOB_MAX_WRITE_FILES", d.max_write_files)?,
            max_sleep_ms: parse_var("GITFLEET_JOB_MAX_SLEEP_MS", d.max_sleep_ms)?,
            max_timeout_ms: parse_var("GITFLEET_JOB_MAX_TIMEOUT_MS", d.max_timeout_ms)?,
            max_result_bytes: parse_var("GITFLEET_MAX_RESULT_BYTES", d.max_result_bytes)?,
        })
    }

    /// Refuses a run time (the envelope's `timeout_ms`) over [`JobLimits::max_timeout_ms`].
    pub fn check_timeout(&self, timeout: Option<Duration>) -> Result<(), JobError> {
        let Some(timeout) = timeout else {
            return Ok(());
        };
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        if ms > self.max_timeout_ms {
            return Err(JobError::invalid_input(format!(
                "timeout_ms: {ms} ms is over the limit of {} ms (GITFLEET_JOB_MAX_TIMEOUT_MS)",
                self.max_timeout_ms
            )));
        }
        Ok(())
    }

    /// Refuses a result of `bytes` (as JSON) over [`JobLimits::max_result_bytes`].
    pub fn check_result(&self, op: &str, bytes: u64) -> Result<(), JobError> {
        if bytes > self.max_result_bytes {
            return Err(JobError::invalid_input(format!(
                "result: {op} answered {bytes} bytes, over the limit of {} bytes \
                 (GITFLEET_MAX_RESULT_BYTES); nothing of it was kept",
                self.max_result_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_over_the_cap_is_refused_naming_both_and_the_variable() {
        let limits = JobLimits {
            max_timeout_ms: 1000,
            ..Default::default()
        };
        limits.check_timeout(None).unwrap();
        limits
            .check_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        let err = limits
            .check_timeout(Some(Duration::from_millis(1001)))
            .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidInput);
        assert_eq!(
            err.message,
            "timeout_ms: 1001 ms is over the limit of 1000 ms (GITFLEET_JOB_MAX_TIMEOUT_MS)"
        );
    }

    #[test]
    fn a_result_over_the_cap_is_refused() {
        let limits = JobLimits {
            max_result_bytes: 10,
            ..Default::default()
        };
        limits.check_result("echo", 10).unwrap();
        let err = limits.check_result("echo", 11).unwrap_err();
        assert!(
            err.message
                .starts_with("result: echo answered 11 bytes, over the limit of 10 bytes"),
            "{err}"
        );
    }
}
