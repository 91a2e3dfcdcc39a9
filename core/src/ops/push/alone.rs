//! A push from a sandbox on its own: a shallow copy, which does not share its objects
//! with the mirror, so it cannot join a [`super::group`]. It commits, rebases and pushes in
//! its own working copy while it holds the branch's lock.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use gitfleet_contract::ops::PushResult;
use serde_json::Value;

use super::super::result;
use super::{ATTEMPTS, confirm_lock, tolerant};
use crate::git::RunOptions;
use crate::sandbox::worktree::{head, integrate};
use crate::sandbox::{Sandbox, SandboxManager};
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_queue::Lock;

/// Whether the remote has `target` (as last fetched).
async fn remote_has(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    target: &str,
) -> Result<bool, JobError> {
    let remote_ref = format!("refs/remotes/origin/{target}");
    let out = manager
        .git_in(
            sandbox,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &remote_ref,
            ],
            tolerant(),
        )
        .await?;
    Ok(out.status == 0)
}

/// The commit on the remote `target` that carries `trailer`, if there is one (as last
/// fetched).
pub(super) async fn landed(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    trailer: &str,
    target: &str,
) -> Result<Option<String>, JobError> {
    if !remote_has(manager, sandbox, target).await? {
        return Ok(None);
    }
    let remote_ref = format!("refs/remotes/origin/{target}");
    let grep = format!("--grep={trailer}");
    let found = manager
        .git_in(
            sandbox,
            &[
                "log",
                "-F",
                &grep,
                "--format=%H",
                "-n",
                "1",
                "--end-of-options",
                &remote_ref,
                "--",
            ],
            RunOptions::default(),
        )
        .await?;
    let sha = found.stdout_str().trim().to_string();
    Ok((!sha.is_empty()).then_some(sha))
}

/// Counts what a shallow sandbox holds after a rebase in place from `before` (it fetched
/// objects too). The push goes on whatever it holds: the rebase has written its tree
/// already and pushing writes nothing more; a later write is refused if it is over.
async fn recount(manager: &SandboxManager, sandbox: &Sandbox, before: &str) {
    manager.recount_objects(sandbox).await;
    let moved = match head(manager, sandbox).await {
        Ok(after) => manager.usage_moved(sandbox, before, &after).await,
        Err(e) => Err(e),
    };
    match moved {
        Ok((usage, _)) => sandbox.set_usage(usage),
        Err(e) => {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "could not count a shallow sandbox after a rebase")
        }
    }
}

pub(super) async fn push_locked(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    trailer: &str,
    target: &str,
    lock: &Lock,
) -> Result<Value, JobError> {
    let remote_ref = format!("refs/remotes/origin/{target}");
    let refspec = format!("HEAD:refs/heads/{target}");
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(ATTEMPTS)
        .build();
    let mut rebased = false;
    for attempt in 1..=ATTEMPTS {
        // Under the lock: the branch may have moved while this job waited for it.
        manager.fetch(sandbox, target).await?;
        if let Some(sha) = landed(manager, sandbox, trailer, target).await? {
            return result(PushResult {
                commit_sha: sha,
                branch: target.to_string(),
                attempts: attempt as u64,
                rebased,
            });
        }
        if remote_has(manager, sandbox, target).await? {
            let ancestor = manager
                .git_in(
                    sandbox,
                    &["merge-base", "--is-ancestor", &remote_ref, "HEAD"],
                    tolerant(),
                )
                .await?
                .status
                == 0;
            if !ancestor {
                let before = head(manager, sandbox).await?;
                let conflicts = integrate(manager, sandbox, &remote_ref, true).await?;
                recount(manager, sandbox, &before).await;
                if !conflicts.is_empty() {
                    return Err(JobError::new(
                        ErrorKind::Conflict,
                        format!(
                            "rebasing onto {target} conflicts in: {}",
                            conflicts.join(", ")
                        ),
                    ));
                }
                rebased = true;
            }
        }
        confirm_lock(lock, target).await?;
        let pushed = manager
            .git_in(
                sandbox,
                &["push", "--porcelain", "--quiet", "origin", &refspec],
                RunOptions {
                    remote: Some(sandbox.repo.clone()),
                    timeout: Some(Duration::from_secs(300)),
                    ..Default::default()
                },
            )
            .await;
        match pushed {
            Ok(_) => {
                return result(PushResult {
                    commit_sha: head(manager, sandbox).await?,
                    branch: target.to_string(),
                    attempts: attempt as u64,
                    rebased,
                });
            }
            Err(e) if e.kind == ErrorKind::Conflict && attempt < ATTEMPTS => {
                let wait = delays.next().unwrap_or(Duration::from_secs(4));
                tracing::info!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "push rejected; rebasing and retrying"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}
