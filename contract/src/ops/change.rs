//! `change`: one self-contained job for any worker: the files of `write_files` committed on
//! a branch of `repo_url` and pushed, without a sandbox the agent holds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clone::CloneArgs;
use super::push::CommitArgs;
use super::write_files::{FileEntry, changes};
use super::{OpArgs, OpName, Rules, clone, push};
use crate::error::JobError;

/// `change`'s args: what to clone, the files to write, what to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeArgs {
    /// As `clone`'s.
    #[serde(flatten)]
    pub repo: CloneArgs,
    /// As `write_files`'s.
    pub files: Vec<FileEntry>,
    /// As `push`'s.
    #[serde(flatten)]
    pub commit: CommitArgs,
}

impl OpArgs for ChangeArgs {
    const OP: OpName = OpName::Change;
    type Result = ChangeResult;

    fn check(args: &Value, rules: &Rules) -> Result<(), JobError> {
        clone::check_fields(args, rules)?;
        changes(args, &rules.limits)?;
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
