//! `clone`: a sandbox holding `repo_url` at `branch`, on the agent's own branch
//! ([`CloneArgs`], [`CloneResult`]).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{CloneArgs, CloneResult, Rules};
use gitfleet_contract::{JobError, OpArgs, fields, rules};
use serde_json::Value;

use super::{Op, RunContext, queue_error, result};
use crate::sandbox::{CloneRequest, SandboxManager};

/// `allow_file`: whether `file://` repositories are accepted (a worker setting, off by
/// default; the client checks as a default worker would).
pub struct CloneOp {
    pub allow_file: bool,
}

/// Checks the args (of `clone` or `change`) and reads what to clone, for `org` (the job's
/// envelope's: the repository is reached with the credentials that serve it).
pub(crate) fn request(
    args: &Value,
    manager: &SandboxManager,
    org: Option<&str>,
) -> Result<CloneRequest, JobError> {
    let allow_file = manager.config().allow_file_protocol;
    let rules = Rules {
        allow_file_repos: allow_file,
        ..Default::default()
    };
    let a = CloneArgs::parse(args, &rules)?;
    Ok(CloneRequest {
        sandbox_id: None,
        org: org.map(str::to_string),
        agent_id: a.agent_id.clone(),
        repo: rules::repo_url("repo_url", &a.repo_url, allow_file)?
            .for_org(org, &manager.git().config().credentials),
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
            let mut req = request(&args, &manager, ctx.org.as_deref())?;
            // Claimed in the registry before it is made: the organization's limit of live
            // sandboxes holds fleet-wide, however many clones run at once.
            let id = manager.new_sandbox_id();
            if let Some(queue) = &ctx.queue {
                queue
                    .claim_sandbox(
                        &id,
                        &ctx.worker_id,
                        req.org.as_deref(),
                        &req.agent_id,
                        ctx.org_max_sandboxes,
                    )
                    .await
                    .map_err(queue_error)?;
            }
            req.sandbox_id = Some(id.clone());
            let cloned = match manager.clone_repo(&req).await {
                Ok(cloned) => cloned,
                Err(e) => {
                    if let Some(queue) = &ctx.queue
                        && let Err(dropped) = queue.drop_sandbox(&id, &ctx.worker_id).await
                    {
                        tracing::warn!(sandbox_id = %id, error = %dropped, "registry: a failed clone's claim stays until this worker leaves");
                    }
                    return Err(e);
                }
            };
            result(CloneResult {
                sandbox_id: cloned.sandbox.id.clone(),
                agent_branch: cloned.sandbox.agent_branch.clone(),
                head_sha: cloned.head_sha,
                cache_hit: cloned.cache_hit,
                source: Some(cloned.source),
            })
        }
        .boxed()
    }
}
