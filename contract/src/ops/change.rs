//! `change`: one self-contained job for any worker: the files of `write_files` committed on
//! a branch of `repo_url` and pushed, without a sandbox the agent holds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clone::default_branch;
use super::write_files::{FileEntry, changes};
use super::{OpArgs, OpName, Rules, clone, push};
use crate::error::JobError;

/// `change`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeArgs {
    /// As `clone`'s.
    pub repo_url: String,
    /// The branch the change starts from.
    #[serde(default = "default_branch")]
    pub branch: String,
    pub agent_id: String,
    pub task_id: String,
    #[serde(default)]
    pub shallow: bool,
    #[serde(default)]
    pub sparse_paths: Vec<String>,
    /// As `write_files`'s.
    pub files: Vec<FileEntry>,
    /// As `push`'s.
    pub message: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
}

impl OpArgs for ChangeArgs {
    const OP: OpName = OpName::Change;
    type Result = ChangeResult;

    fn check(args: &Value, rules: &Rules) -> Result<(), JobError> {
        clone::check_fields(args, rules)?;
        changes(args)?;
        push::commit(args).map(|_| ())
    }
}

/// What `change` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeResult {
    pub commit_sha: String,
    pub branch: String,
    pub attempts: u64,
}
