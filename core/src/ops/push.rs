//! `push` and `change`: DESIGN.md's push protocol.
//!
//! Commit what the sandbox has (with a `Gitfleet-Job: <job id>` trailer), then, holding a
//! Redis lock on `(repo, branch)` (TTL 30 s, renewed, acquired within 5 s): fetch; if the
//! remote branch already has a commit with this job's trailer, the job ran before (a crash
//! between push and acknowledgement) and that commit is the answer; rebase onto the remote
//! branch if it moved (a conflict aborts the rebase and fails with `conflict` and the
//! paths); push, never forced. A rejected push (someone outside the fleet pushed) is retried
//! with exponential backoff and jitter, 3 attempts (1 s, 2 s, 4 s).
//!
//! `change` is the self-contained form for any worker: clone, write the files, push,
//! release.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::pull::{head, integrate};
use super::write_files::{apply, changes};
use super::{Op, RunContext, fields};
use crate::git::RunOptions;
use crate::job::{ErrorKind, JobError};
use crate::queue::Queue;
use crate::sandbox::{Sandbox, SandboxManager};

pub struct PushOp;
/// `allow_file`: as for [`super::CloneOp`].
pub struct ChangeOp {
    pub allow_file: bool,
}

/// Push attempts when the remote rejects the push.
const ATTEMPTS: usize = 3;
const LOCK_TTL: Duration = Duration::from_secs(30);
const LOCK_WAIT: Duration = Duration::from_secs(5);

fn tolerant() -> RunOptions {
    RunOptions {
        allow_failure: true,
        ..Default::default()
    }
}

/// Commits what is staged (after `git add` of `paths`, or of everything), unless HEAD is
/// already this job's commit (the job is running again).
async fn commit(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    trailer: &str,
    message: &str,
    paths: &[String],
) -> Result<(), JobError> {
    let last = manager
        .git_in(sandbox, &["log", "-1", "--format=%B"], tolerant())
        .await?;
    if last.status == 0 && last.stdout_str().lines().any(|l| l.trim() == trailer) {
        return Ok(());
    }
    // --sparse: a file written outside a sparse checkout's set is committed too.
    let mut add = vec!["add", "--sparse", "-A", "--"];
    if paths.is_empty() {
        add.push(".");
    } else {
        add.extend(paths.iter().map(String::as_str));
    }
    manager.git_in(sandbox, &add, RunOptions::default()).await?;
    let staged = manager
        .git_in(sandbox, &["diff", "--cached", "--quiet"], tolerant())
        .await?;
    if staged.status == 0 {
        return Err(JobError::invalid_input(
            "nothing to commit: the sandbox has no changes (in the given paths)",
        ));
    }
    manager
        .git_in(
            sandbox,
            &[
                "commit",
                "--quiet",
                "--no-verify",
                "-m",
                message,
                "-m",
                trailer,
            ],
            RunOptions::default(),
        )
        .await?;
    Ok(())
}

/// Pushes the sandbox's HEAD to `target` by the protocol above.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn push(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    queue: &Queue,
    worker_id: &str,
    attempt: u32,
    job_id: &str,
    message: &str,
    paths: &[String],
    target: &str,
) -> Result<Value, JobError> {
    let trailer = format!("Gitfleet-Job: {job_id}");
    commit(manager, sandbox, &trailer, message, paths).await?;

    // A run after a crash (a later attempt): if the commit already landed, say so without
    // waiting for a lock the crashed run may still hold. A first attempt skips this: it
    // cannot have landed anything, and the check costs a mirror refresh.
    if attempt > 1 {
        manager.fetch(sandbox, target).await?;
        if let Some(landed) = landed(manager, sandbox, trailer.as_str(), target).await? {
            return Ok(
                json!({"commit_sha": landed, "branch": target, "attempts": 1, "rebased": false}),
            );
        }
    }
    let lock_name = format!("push:{}:{target}", sandbox.repo.cache_key);
    let lock = queue
        .lock(worker_id, &lock_name, LOCK_TTL, LOCK_WAIT)
        .await
        .map_err(|e| JobError::new(ErrorKind::Network, format!("push lock: {e}")))?
        .ok_or_else(|| {
            JobError::timeout(format!(
                "branch {target} is being pushed by others; lock not free within {} s",
                LOCK_WAIT.as_secs()
            ))
        })?;
    let result = push_locked(manager, sandbox, &trailer, target).await;
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the push lock; it expires by itself");
    }
    result
}

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
async fn landed(
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

async fn push_locked(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    trailer: &str,
    target: &str,
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
            return Ok(json!({
                "commit_sha": sha,
                "branch": target,
                "attempts": attempt,
                "rebased": rebased,
            }));
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
                let conflicts = integrate(manager, sandbox, &remote_ref, true).await?;
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
        let pushed = manager
            .git_in(
                sandbox,
                &["push", "--porcelain", "--quiet", "origin", &refspec],
                RunOptions {
                    remote: Some(sandbox.repo.url.clone()),
                    timeout: Some(Duration::from_secs(300)),
                    ..Default::default()
                },
            )
            .await;
        match pushed {
            Ok(_) => {
                return Ok(json!({
                    "commit_sha": head(manager, sandbox).await?,
                    "branch": target,
                    "attempts": attempt,
                    "rebased": rebased,
                }));
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

/// The Redis that holds the push locks: the queue's.
fn lock_queue(ctx: &RunContext) -> Result<Queue, JobError> {
    ctx.queue
        .clone()
        .ok_or_else(|| JobError::internal("pushing needs the queue's Redis for its lock"))
}

struct PushArgs<'a> {
    message: &'a str,
    paths: Vec<String>,
    target: Option<&'a str>,
}

fn push_args(args: &Value) -> Result<PushArgs<'_>, JobError> {
    let target = match fields::opt_string(args, "target_branch")? {
        Some(t) => {
            crate::git::validate::branch("target_branch", t)?;
            Some(t)
        }
        None => None,
    };
    Ok(PushArgs {
        message: fields::message(args, "message")?,
        paths: fields::opt_paths(args, "paths")?,
        target,
    })
}

impl Op for PushOp {
    fn name(&self) -> &'static str {
        "push"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        push_args(args).map(|_| ())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(600)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let p = push_args(&args)?;
            let queue = lock_queue(&ctx)?;
            let target = p.target.unwrap_or(&sandbox.agent_branch).to_string();
            let _busy = sandbox.lock().await;
            push(
                &manager,
                &sandbox,
                &queue,
                &ctx.worker_id,
                ctx.attempt,
                &ctx.job_id,
                p.message,
                &p.paths,
                &target,
            )
            .await
        }
        .boxed()
    }
}

impl Op for ChangeOp {
    fn name(&self) -> &'static str {
        "change"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        super::clone::request(args, self.allow_file)?;
        changes(args)?;
        push_args(args).map(|_| ())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(900)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let manager = ctx.sandboxes()?.clone();
            let req = super::clone::request(&args, manager.config().allow_file_protocol)?;
            let files = changes(&args)?;
            let p = push_args(&args)?;
            let queue = lock_queue(&ctx)?;
            let cloned = manager.clone_repo(&req).await?;
            let sandbox = cloned.sandbox;
            let target = p.target.unwrap_or(&sandbox.agent_branch).to_string();
            let result = async {
                apply(&sandbox.work(), &files).await?;
                push(
                    &manager,
                    &sandbox,
                    &queue,
                    &ctx.worker_id,
                    ctx.attempt,
                    &ctx.job_id,
                    p.message,
                    &p.paths,
                    &target,
                )
                .await
            }
            .await;
            if let Err(e) = manager.release(&sandbox.id).await {
                tracing::warn!(error = %e, "could not release the change's sandbox");
            }
            let v = result?;
            Ok(json!({
                "commit_sha": v["commit_sha"],
                "branch": v["branch"],
                "attempts": v["attempts"],
            }))
        }
        .boxed()
    }
}
