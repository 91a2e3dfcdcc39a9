//! `clone`: a sandbox holding `repo_url` at `branch`, on the agent's own branch
//! ([`CloneArgs`], [`CloneResult`]).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{CloneArgs, CloneResult, Rules};
use gitfleet_contract::{JobError, OpArgs, fields, rules};
use serde_json::Value;

use super::{Op, RunContext, result};
use crate::sandbox::CloneRequest;

/// `allow_file`: whether `file://` repositories are accepted (a worker setting, off by
/// default; the client checks as a default worker would).
pub struct CloneOp {
    pub allow_file: bool,
}

/// Checks the args (of `clone` or `change`) and reads what to clone.
pub(crate) fn request(args: &Value, allow_file: bool) -> Result<CloneRequest, JobError> {
    let rules = Rules {
        allow_file_repos: allow_file,
        ..Default::default()
    };
    let a = CloneArgs::parse(args, &rules)?;
    Ok(CloneRequest {
        repo: rules::repo_url("repo_url", &a.repo_url, allow_file)?,
        agent_branch: a.agent_branch(),
        branch: a.branch,
        shallow: a.shallow,
        sparse_paths: a
            .sparse_paths
            .iter()
            .map(|p| fields::as_checked(p).to_string())
            .collect(),
    })
}

impl Op for CloneOp {
    fn name(&self) -> &'static str {
        CloneArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        CloneArgs::check(
            args,
            &Rules {
                allow_file_repos: self.allow_file,
                ..Default::default()
            },
        )
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(600)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let manager = ctx.sandboxes()?.clone();
            let req = request(&args, manager.config().allow_file_protocol)?;
            let cloned = manager.clone_repo(&req).await?;
            result(CloneResult {
                sandbox_id: cloned.sandbox.id.clone(),
                agent_branch: cloned.sandbox.agent_branch.clone(),
                head_sha: cloned.head_sha,
                cache_hit: cloned.cache_hit,
            })
        }
        .boxed()
    }
}
