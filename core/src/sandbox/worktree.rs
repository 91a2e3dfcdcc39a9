//! Git on a sandbox's working tree itself: where its HEAD is, which paths conflict, and a
//! rebase or merge in place (for a shallow sandbox, whose objects are its own; every other
//! sandbox integrates in the mirror, see [`super::replay`]).

use gitfleet_contract::JobError;

use super::replay::shared_objects;
use super::{Sandbox, SandboxManager};
use crate::git::RunOptions;

/// The commit the sandbox's HEAD is at.
pub(crate) async fn head(manager: &SandboxManager, sandbox: &Sandbox) -> Result<String, JobError> {
    let out = manager
        .git_in(sandbox, &["rev-parse", "HEAD"], RunOptions::default())
        .await?;
    Ok(out.stdout_str().trim().to_string())
}

/// Paths with unresolved conflicts.
async fn conflicted(manager: &SandboxManager, sandbox: &Sandbox) -> Result<Vec<String>, JobError> {
    names(
        manager,
        sandbox,
        &[
            "diff",
            "--ignore-submodules=all",
            "--name-only",
            "--diff-filter=U",
            "-z",
        ],
    )
    .await
}

/// The NUL-separated names a git command lists.
pub(crate) async fn names(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    args: &[&str],
) -> Result<Vec<String>, JobError> {
    let out = manager.git_in(sandbox, args, RunOptions::default()).await?;
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
    // New commits go into the mirror, like a push's (see `replay::shared_objects`).
    let tolerant = RunOptions {
        allow_failure: true,
        ..shared_objects(manager, sandbox)
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
