//! `pull`: brings a sandbox up to date with the branch it was cloned from, by rebase
//! (default) or merge; uncommitted changes are carried along. A conflict leaves the sandbox
//! as it was and lists the conflicting paths. Result: `head_sha`, `updated`, `conflicts`.
//!
//! The rebase or merge is computed in the repository's mirror, without a working tree
//! (`merge-tree`, `commit-tree`, as a push group does it), and the sandbox then moves onto
//! the result with `reset --keep`, which keeps uncommitted changes and refuses if they are
//! in files the pull changes (those files are the conflicts then). No stash is involved: a
//! stash reads the repository's `.gitmodules`, which a hostile one can make unreadable. A
//! shallow sandbox (its objects are its own) still rebases or merges in place.
//!
//! A pull that would take the sandbox over its limits (bytes, files, largest file) is
//! refused: for a full sandbox before it moves (the result's tree sizes, listed in the
//! mirror, against the sandbox's running count; see `sandbox::limits`), for a shallow one
//! right after, moving it back.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{PullArgs, PullResult, Rules};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};
use crate::git::RunOptions;
use crate::sandbox::replay::{Mirror, Replayed};
use crate::sandbox::worktree::{head, integrate, names};
use crate::sandbox::{Sandbox, SandboxManager};

pub struct PullOp;

/// Brings the sandbox onto `upstream` (a ref it has), by rebase or merge, in the mirror.
/// `Ok(conflicts)`: empty when it went through; otherwise nothing changed.
async fn catch_up(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    upstream_ref: &str,
    rebase: bool,
) -> Result<Vec<String>, JobError> {
    if sandbox.shallow {
        return integrate_shallow(manager, sandbox, upstream_ref, rebase).await;
    }
    let before = head(manager, sandbox).await?;
    let upstream = manager
        .git_in(
            sandbox,
            &["rev-parse", "--verify", "--end-of-options", upstream_ref],
            RunOptions::default(),
        )
        .await?
        .stdout_str()
        .trim()
        .to_string();
    let own = [sandbox.objects()];
    let mirror = Mirror::new(manager, &sandbox.repo, &own);
    let ancestor = |a: String, b: String| {
        let mirror = &mirror;
        async move {
            let out = mirror
                .git_tolerant(&["merge-base", "--is-ancestor", &a, &b])
                .await?;
            Ok::<bool, JobError>(out.status == 0)
        }
    };
    let target = if ancestor(upstream.clone(), before.clone()).await? {
        // Nothing new upstream.
        before.clone()
    } else if ancestor(before.clone(), upstream.clone()).await? {
        upstream.clone()
    } else if rebase {
        let tree = mirror.tree_of(&upstream).await?;
        match mirror.replay(&before, &upstream, Some(&tree)).await? {
            Replayed::Unchanged => upstream.clone(),
            Replayed::FastForward => before.clone(),
            Replayed::Onto { commit, .. } => commit,
            Replayed::Conflict(paths) => return Ok(paths),
        }
    } else {
        match mirror.merge(&before, &upstream, upstream_ref).await? {
            Ok(commit) => commit,
            Err(paths) => return Ok(paths),
        }
    };
    if target == before {
        return Ok(Vec::new());
    }
    // Checked before the tree moves: the new tree's sizes against the running count.
    let usage = manager
        .check_move(&moving_onto(&target), sandbox, &before, &target)
        .await?;
    let moved = manager
        .git_in(
            sandbox,
            &["reset", "--keep", "--quiet", &target, "--"],
            RunOptions {
                allow_failure: true,
                ..Default::default()
            },
        )
        .await?;
    if moved.status == 0 {
        sandbox.set_usage(usage);
        return Ok(Vec::new());
    }
    // Uncommitted changes in files the pull changes: those are the conflicts.
    let local = names(
        manager,
        sandbox,
        &[
            "diff",
            "--ignore-submodules=all",
            "--name-only",
            "-z",
            "HEAD",
            "--",
        ],
    )
    .await?;
    let incoming = names(
        manager,
        sandbox,
        &[
            "diff",
            "--ignore-submodules=all",
            "--name-only",
            "-z",
            &before,
            &target,
            "--",
        ],
    )
    .await?;
    let conflicts: Vec<String> = local.into_iter().filter(|p| incoming.contains(p)).collect();
    if conflicts.is_empty() {
        return Err(JobError::internal(format!(
            "could not move the sandbox onto {target}: {}",
            moved.stderr.trim()
        )));
    }
    Ok(conflicts)
}

/// How a refused move begins its message.
fn moving_onto(commit: &str) -> String {
    format!("pull: moving onto {commit} would leave the sandbox with")
}

/// A shallow sandbox rebases (or merges) in place, so its new tree is only known once it
/// is written: checked right after, and moved back (`reset --keep`) when over a limit.
async fn integrate_shallow(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    upstream_ref: &str,
    rebase: bool,
) -> Result<Vec<String>, JobError> {
    let before = head(manager, sandbox).await?;
    manager.recount_objects(sandbox).await;
    let conflicts = integrate(manager, sandbox, upstream_ref, rebase).await?;
    if !conflicts.is_empty() {
        return Ok(conflicts);
    }
    let after = head(manager, sandbox).await?;
    let checked = async {
        if after == before {
            return Ok(sandbox.usage());
        }
        manager
            .check_move(&moving_onto(&after), sandbox, &before, &after)
            .await
    };
    match checked.await {
        Ok(usage) => {
            sandbox.set_usage(usage);
            Ok(Vec::new())
        }
        Err(refused) => {
            let back = manager
                .git_in(
                    sandbox,
                    &["reset", "--keep", "--quiet", &before, "--"],
                    RunOptions {
                        allow_failure: true,
                        ..Default::default()
                    },
                )
                .await;
            if !matches!(back, Ok(ref out) if out.status == 0) {
                tracing::warn!(sandbox = %sandbox.id, "a refused pull could not move the sandbox back");
            }
            Err(refused)
        }
    }
}

impl Op for PullOp {
    fn name(&self) -> &'static str {
        PullArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        PullArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(300)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let PullArgs { rebase, .. } = PullArgs::parse(&args, &Rules::default())?;
            let _busy = sandbox.lock().await;
            let before = head(&manager, &sandbox).await?;
            manager.fetch(&sandbox, &sandbox.branch).await?;
            let upstream = format!("origin/{}", sandbox.branch);
            let conflicts = catch_up(&manager, &sandbox, &upstream, rebase).await?;
            let after = head(&manager, &sandbox).await?;
            result(PullResult {
                updated: after != before,
                head_sha: after,
                conflicts,
            })
        }
        .boxed()
    }
}
