//! `pull`: brings a sandbox up to date with the branch it was cloned from, by rebase
//! (default) or merge; uncommitted changes are carried along (autostash). A conflict
//! leaves the sandbox as it was and lists the conflicting paths. Result: `head_sha`,
//! `updated`, `conflicts`.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Op, RunContext, fields};
use crate::git::RunOptions;
use crate::job::JobError;
use crate::sandbox::{Sandbox, SandboxManager};

pub struct PullOp;

pub(crate) async fn head(manager: &SandboxManager, sandbox: &Sandbox) -> Result<String, JobError> {
    let out = manager
        .git_in(sandbox, &["rev-parse", "HEAD"], RunOptions::default())
        .await?;
    Ok(out.stdout_str().trim().to_string())
}

/// Paths with unresolved conflicts.
pub(crate) async fn conflicted(
    manager: &SandboxManager,
    sandbox: &Sandbox,
) -> Result<Vec<String>, JobError> {
    let out = manager
        .git_in(
            sandbox,
            &[
                "diff",
                "--ignore-submodules=all",
                "--name-only",
                "--diff-filter=U",
                "-z",
            ],
            RunOptions::default(),
        )
        .await?;
    Ok(out
        .stdout_str()
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

/// Rebases (or merges) the sandbox's branch onto `upstream`. `Ok(conflicts)`: empty when
/// it went through; otherwise the operation was aborted and nothing changed.
pub(crate) async fn integrate(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    upstream: &str,
    rebase: bool,
) -> Result<Vec<String>, JobError> {
    // New commits go into the mirror, like a push's (see `push::group::shared_objects`).
    let tolerant = RunOptions {
        allow_failure: true,
        ..super::push::group::shared_objects(manager, sandbox)
    };
    let args: Vec<&str> = if rebase {
        vec!["rebase", "--autostash", "--quiet", upstream]
    } else {
        vec!["merge", "--autostash", "--no-edit", "--quiet", upstream]
    };
    let out = manager.git_in(sandbox, &args, tolerant.clone()).await?;
    if out.status == 0 {
        return Ok(Vec::new());
    }
    let conflicts = conflicted(manager, sandbox).await?;
    let abort = if rebase {
        ["rebase", "--abort"]
    } else {
        ["merge", "--abort"]
    };
    manager.git_in(sandbox, &abort, tolerant).await?;
    if conflicts.is_empty() {
        return Err(JobError::internal(format!(
            "git {} failed: {}",
            args[0],
            out.stderr.trim()
        )));
    }
    Ok(conflicts)
}

impl Op for PullOp {
    fn name(&self) -> &'static str {
        "pull"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        fields::opt_bool(args, "rebase", true).map(|_| ())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(300)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let rebase = fields::opt_bool(&args, "rebase", true)?;
            let _busy = sandbox.lock().await;
            let before = head(&manager, &sandbox).await?;
            manager.fetch(&sandbox, &sandbox.branch).await?;
            let upstream = format!("origin/{}", sandbox.branch);
            let conflicts = integrate(&manager, &sandbox, &upstream, rebase).await?;
            let after = head(&manager, &sandbox).await?;
            Ok(json!({
                "head_sha": after,
                "updated": after != before,
                "conflicts": conflicts,
            }))
        }
        .boxed()
    }
}
