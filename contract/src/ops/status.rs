//! `status`: where a sandbox's working tree stands against its branch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;

/// `status`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusArgs {
    /// The sandbox, as `clone` answered it.
    pub sandbox_id: String,
}

impl OpArgs for StatusArgs {
    const OP: OpName = OpName::Status;
    type Result = StatusResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args).map(|_| ())
    }
}

/// What `status` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusResult {
    pub branch: String,
    pub head_sha: String,
    /// Commits ahead of and behind the upstream branch.
    pub ahead: i64,
    pub behind: i64,
    pub staged: Vec<String>,
    pub modified: Vec<String>,
    pub untracked: Vec<String>,
    pub conflicted: Vec<String>,
}
