//! `sleep` (`{"ms": N}`): waits N milliseconds. Stands in for a long job in tests of
//! shutdown and crash recovery.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;

/// The longest sleep accepted: an hour.
pub const MAX_MS: u64 = 3_600_000;

/// `sleep`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// Milliseconds, at most an hour.
    #[schemars(range(max = 3_600_000))]
    pub ms: u64,
}

impl SleepArgs {
    /// The checked `ms` of `args`.
    pub fn ms(args: &Value) -> Result<u64, JobError> {
        match args.get("ms") {
            None => Err(JobError::invalid_input("ms: required")),
            Some(v) => match v.as_u64() {
                Some(ms) if ms <= MAX_MS => Ok(ms),
                Some(_) => Err(JobError::invalid_input(format!("ms: at most {MAX_MS}"))),
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

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        Self::ms(args).map(|_| ())
    }
}

/// What `sleep` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SleepResult {
    pub slept_ms: u64,
}
