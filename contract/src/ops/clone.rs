//! `clone`: a sandbox holding `repo_url` at `branch`, on the agent's own branch
//! `agent-{agent_id}-{task_id}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;
use crate::rules;

/// `clone`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloneArgs {
    /// The repository: `https://`, `http://`, `ssh://`, `git://` or `user@host:path` (no
    /// credentials in it; tokens are the fleet's configuration, never a job's).
    pub repo_url: String,
    /// The branch to start from.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// 1-64 of letters, digits, `_`, `-`, `.`; part of the agent branch's name.
    pub agent_id: String,
    /// As `agent_id`.
    pub task_id: String,
    /// Fetch only the tip of `branch` (such a sandbox pushes on its own, never grouped).
    #[serde(default)]
    pub shallow: bool,
    /// Check out only these paths (all when empty).
    #[serde(default)]
    pub sparse_paths: Vec<String>,
}

fn default_branch() -> String {
    "main".into()
}

impl CloneArgs {
    /// The branch the agent's work goes to: `agent-{agent_id}-{task_id}`.
    pub fn agent_branch(&self) -> String {
        agent_branch(&self.agent_id, &self.task_id)
    }
}

fn agent_branch(agent_id: &str, task_id: &str) -> String {
    format!("agent-{agent_id}-{task_id}")
}

/// The checks of `clone`'s fields, shared with `change`.
pub(crate) fn check_fields(args: &Value, rules: &Rules) -> Result<(), JobError> {
    rules::repo_url(
        "repo_url",
        fields::string(args, "repo_url")?,
        rules.allow_file_repos,
    )?;
    fields::branch(args, "branch", "main")?;
    let agent_id = fields::ident(args, "agent_id")?;
    let task_id = fields::ident(args, "task_id")?;
    rules::branch("agent_id/task_id", &agent_branch(agent_id, task_id))?;
    fields::opt_bool(args, "shallow", false)?;
    fields::opt_paths(args, "sparse_paths")?;
    Ok(())
}

impl OpArgs for CloneArgs {
    const OP: OpName = OpName::Clone;
    type Result = CloneResult;

    fn check(args: &Value, rules: &Rules) -> Result<(), JobError> {
        check_fields(args, rules)
    }
}

/// What `clone` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloneResult {
    /// `<worker id>.<ulid>`: every later op on the sandbox names it.
    pub sandbox_id: String,
    pub agent_branch: String,
    pub head_sha: String,
    /// A released copy of the repository was recycled.
    pub cache_hit: bool,
    /// How the sandbox was made (absent from workers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SandboxSource>,
}

/// How a sandbox was made, fastest first: a released copy of the repository recycled
/// (`cache`), a warm empty sandbox of the worker's pool (`pool`), a new directory made from
/// the template because the pool was empty (`template`), or with the repository's mirror
/// cloned from the remote first, the worker never having had it (`cold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxSource {
    Cache,
    Pool,
    Template,
    Cold,
}

impl SandboxSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxSource::Cache => "cache",
            SandboxSource::Pool => "pool",
            SandboxSource::Template => "template",
            SandboxSource::Cold => "cold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cache" => SandboxSource::Cache,
            "pool" => SandboxSource::Pool,
            "template" => SandboxSource::Template,
            "cold" => SandboxSource::Cold,
            _ => return None,
        })
    }
}
