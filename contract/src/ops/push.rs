//! `push`: commits what a sandbox has and puts it on a branch of the remote, by the push
//! protocol (locked, rebased when the branch moved, retried, never forced, never twice).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;
use crate::rules;

/// `push`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushArgs {
    pub sandbox_id: String,
    #[serde(flatten)]
    pub commit: CommitArgs,
}

/// What to commit and where to push it: the fields `push` and `change` share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitArgs {
    /// The commit message: not empty, at most 64 KiB, no NUL.
    pub message: String,
    /// Commit only these paths (all when empty).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The branch to push to (the agent branch when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_branch: Option<String>,
}

/// The commit fields of `push` and `change`: `target_branch`, `message`, `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit<'a> {
    pub message: &'a str,
    pub paths: Vec<String>,
    pub target: Option<&'a str>,
}

/// Checks and reads the commit fields of `args`.
pub fn commit(args: &Value) -> Result<Commit<'_>, JobError> {
    let target = match fields::opt_string(args, "target_branch")? {
        Some(t) => {
            rules::branch("target_branch", t)?;
            Some(t)
        }
        None => None,
    };
    Ok(Commit {
        message: fields::message(args, "message")?,
        paths: fields::opt_paths(args, "paths")?,
        target,
    })
}

impl OpArgs for PushArgs {
    const OP: OpName = OpName::Push;
    type Result = PushResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        commit(args).map(|_| ())
    }
}

/// What `push` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PushResult {
    /// The commit on the remote (a re-run after a crash answers the one it landed before).
    pub commit_sha: String,
    pub branch: String,
    /// Pushes tried.
    pub attempts: u64,
    /// The commit was rebased onto a branch that had moved.
    pub rebased: bool,
}
