//! `release`: gives a sandbox back; its working copy may be kept for the next clone of the
//! repository. Never refused for a budget: it ends the spending.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;

/// `release`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseArgs {
    pub sandbox_id: String,
}

impl OpArgs for ReleaseArgs {
    const OP: OpName = OpName::Release;
    type Result = ReleaseResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args).map(|_| ())
    }
}

/// What `release` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseResult {
    /// The working copy went to the cache of released copies.
    pub cached: bool,
}
