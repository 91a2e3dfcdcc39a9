//! `diff`: the changes in a sandbox's working tree (or its index), as a unified diff.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;

/// `diff`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffArgs {
    pub sandbox_id: String,
    /// Only these paths (all when empty).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The staged changes instead of the working tree's.
    #[serde(default)]
    pub staged: bool,
}

impl OpArgs for DiffArgs {
    const OP: OpName = OpName::Diff;
    type Result = DiffResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        fields::opt_paths(args, "paths")?;
        fields::opt_bool(args, "staged", false)?;
        Ok(())
    }
}

/// What `diff` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffResult {
    pub diff: String,
    pub files_changed: u64,
    pub insertions: u64,
    pub deletions: u64,
    /// The diff was cut at the output limit.
    pub truncated: bool,
}
