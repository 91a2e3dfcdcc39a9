//! `clone`: a sandbox holding `repo_url` at `branch`, on the agent's own branch
//! `agent-{agent_id}-{task_id}`. Result: `sandbox_id`, `agent_branch`, `head_sha`,
//! `cache_hit` (a released copy of the repository was recycled).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Op, RunContext, fields};
use crate::git::validate;
use crate::job::JobError;
use crate::sandbox::CloneRequest;

/// `allow_file`: whether `file://` repositories are accepted (a worker setting, off by
/// default; the client checks as a default worker would).
pub struct CloneOp {
    pub allow_file: bool,
}

/// Checks the args.
pub(crate) fn request(args: &Value, allow_file: bool) -> Result<CloneRequest, JobError> {
    let repo = validate::repo_url("repo_url", fields::string(args, "repo_url")?, allow_file)?;
    let branch = fields::branch(args, "branch", "main")?.to_string();
    let agent_id = fields::ident(args, "agent_id")?;
    let task_id = fields::ident(args, "task_id")?;
    let agent_branch = format!("agent-{agent_id}-{task_id}");
    validate::branch("agent_id/task_id", &agent_branch)?;
    Ok(CloneRequest {
        repo,
        branch,
        agent_branch,
        shallow: fields::opt_bool(args, "shallow", false)?,
        sparse_paths: fields::opt_paths(args, "sparse_paths")?,
    })
}

impl Op for CloneOp {
    fn name(&self) -> &'static str {
        "clone"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        request(args, self.allow_file).map(|_| ())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(600)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let manager = ctx.sandboxes()?.clone();
            let req = request(&args, manager.config().allow_file_protocol)?;
            let cloned = manager.clone_repo(&req).await?;
            Ok(json!({
                "sandbox_id": cloned.sandbox.id,
                "agent_branch": cloned.sandbox.agent_branch,
                "head_sha": cloned.head_sha,
                "cache_hit": cloned.cache_hit,
            }))
        }
        .boxed()
    }
}
