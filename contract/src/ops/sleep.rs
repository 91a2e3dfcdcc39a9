//! `sleep` (`{"ms": N}`): waits N milliseconds. Stands in for a long job in tests of
//! shutdown and crash recovery.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JobLimits, OpArgs, OpName, Rules};
use crate::error::JobError;

/// `sleep`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// Milliseconds, at most `GITFLEET_JOB_MAX_SLEEP_MS` (default an hour).
    #[schemars(range(max = 3_600_000))]
    pub ms: u64,
}

impl SleepArgs {
    /// The checked `ms` of `args`, at most `limits.max_sleep_ms`.
    pub fn ms(args: &Value, limits: &JobLimits) -> Result<u64, JobError> {
        match args.get("ms") {
            None => Err(JobError::invalid_input("ms: required")),
            Some(v) => match v.as_u64() {
                Some(ms) if ms <= limits.max_sleep_ms => Ok(ms),
                Some(ms) => Err(JobError::invalid_input(format!(
                    "ms: {ms} is over the limit of {} (GITFLEET_JOB_MAX_SLEEP_MS)",
                    limits.max_sleep_ms
                ))),
                None => Err(JobError::invalid_input(
                    "ms: must be a whole number of milliseconds >= 0",
                )),
            },
        }
    }
}

impl OpArgs for SleepArgs {
    const OP: OpName = OpName::Sleep;
    type Result = SleepResult;

    fn check(args: &Value, rules: &Rules) -> Result<(), JobError> {
        Self::ms(args, &rules.limits).map(|_| ())
    }
}

/// What `sleep` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SleepResult {
    pub slept_ms: u64,
}
