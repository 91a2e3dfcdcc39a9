//! `pull`: brings a sandbox up to date with its branch on the remote.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;

/// `pull`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PullArgs {
    pub sandbox_id: String,
    /// Rebase the sandbox's commits onto the remote's (else merge).
    #[serde(default = "yes")]
    pub rebase: bool,
}

fn yes() -> bool {
    true
}

impl OpArgs for PullArgs {
    const OP: OpName = OpName::Pull;
    type Result = PullResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        fields::opt_bool(args, "rebase", true)?;
        Ok(())
    }
}

/// What `pull` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PullResult {
    pub head_sha: String,
    /// The sandbox's HEAD moved.
    pub updated: bool,
    /// Paths that could not be integrated (the sandbox is left as it was).
    pub conflicts: Vec<String>,
}
