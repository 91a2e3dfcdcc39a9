//! `push` and `change`: DESIGN.md's push protocol.
//!
//! Commit what the sandbox has, with a `Gitfleet-Job: <job id>` trailer, then put it on the
//! target branch holding a Redis lock on `(repo, branch)` (TTL 30 s, renewed, acquired
//! within 5 s): fetch; if the branch already has a commit with this job's trailer, the job
//! ran before (a crash between push and acknowledgement) and that commit is the answer;
//! rebase onto the branch if it moved (a conflict fails with `conflict` and the paths, and
//! leaves the sandbox as it was); push, never forced. A rejected push (someone outside the
//! fleet pushed) is retried with exponential backoff and jitter, 3 attempts (1 s, 2 s, 4 s).
//! Right before each `git push` the pusher confirms, in one Redis round trip, that it still
//! holds the lock with its token and has not been declared dead ([`confirm_lock`]); if not,
//! nothing is pushed and the job fails retryably.
//!
//! The pushes a worker has for one branch at a time go out together, under one hold of the
//! lock and in one `git push` ([`group`]): the rebase is done in the repository's mirror,
//! without a working tree, and the sandbox is moved onto its landed commit afterwards. A
//! shallow sandbox pushes by itself ([`alone`]).
//!
//! `change` is the self-contained form for any worker: clone, write the files, push,
//! release.

mod alone;
mod direct;
pub(crate) mod group;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::push::{Commit, commit as commit_fields};
use gitfleet_contract::ops::write_files::changes;
use gitfleet_contract::ops::{ChangeArgs, ChangeResult, PushArgs, PushResult, Rules};
use gitfleet_contract::rules::RepoUrl;
use gitfleet_contract::{ErrorKind, JobError, OpArgs};
use gitfleet_queue::{Lock, Queue, QueueError};
use serde_json::Value;

pub use group::{PushGroups, PushSettings};

use super::{Op, RunContext, result};
use crate::git::RunOptions;
use crate::sandbox::replay::shared_objects;
use crate::sandbox::worktree::head;
use crate::sandbox::{Sandbox, SandboxManager};

/// `push`; its pushes join those of `change` in the same [`PushGroups`].
pub struct PushOp {
    groups: Arc<PushGroups>,
}

impl PushOp {
    pub fn new(groups: Arc<PushGroups>) -> Self {
        Self { groups }
    }
}

/// `change`; `rules` as for [`super::CloneOp`] (`file://` repositories) and
/// [`super::WriteFilesOp`] (the job's write caps).
pub struct ChangeOp {
    rules: Rules,
    groups: Arc<PushGroups>,
}

impl ChangeOp {
    pub fn new(rules: Rules, groups: Arc<PushGroups>) -> Self {
        Self { rules, groups }
    }
}

/// Push attempts when the remote rejects the push.
const ATTEMPTS: usize = 3;

/// The Redis lock of `(repo, branch)`, shared by grouped and lone pushes.
fn lock_name(repo: &RepoUrl, target: &str) -> String {
    format!("push:{}:{target}", repo.cache_key)
}

/// The lock was still taken by another when the wait for it ran out.
fn lock_timeout(target: &str, wait: Duration) -> JobError {
    JobError::timeout(format!(
        "branch {target} is being pushed by others; lock not free within {} ms",
        wait.as_millis()
    ))
}

/// Why the push lock could not be taken.
fn lock_error(e: QueueError) -> JobError {
    match e {
        QueueError::Fenced(m) => JobError::internal(format!("push lock: {m}; nothing was pushed")),
        e => JobError::new(ErrorKind::Network, format!("push lock: {e}")),
    }
}

/// Fencing, right before each `git push` to `target`: one round trip that confirms this
/// worker still holds the branch's lock (its token) and has not been declared dead, and
/// extends the lock. A worker paused past the dead-after time wakes up here with a lock
/// that was freed and perhaps taken by another: it must not push, and its job fails
/// retryably (its next run looks for its commit by its trailer first).
async fn confirm_lock(lock: &Lock, target: &str) -> Result<(), JobError> {
    lock.confirm().await.map_err(|e| match e {
        QueueError::LockLost(_) => JobError::timeout(format!(
            "the push lock of branch {target} was lost before pushing (it expired, or this \
             worker was paused and another took it); nothing was pushed"
        )),
        QueueError::Fenced(_) => JobError::internal(format!(
            "this worker was declared dead before pushing to {target}; nothing was pushed"
        )),
        e => JobError::new(
            ErrorKind::Network,
            format!("push lock of {target}: cannot confirm it, so nothing was pushed: {e}"),
        ),
    })
}

/// Counts a push's outcome for the Repositories view: landed (and whether it was rebased),
/// or refused with `conflict`.
fn count_push(manager: &SandboxManager, repo: &RepoUrl, outcome: Result<bool, &JobError>) {
    match outcome {
        Ok(rebased) => manager.stats().pushed(repo, rebased),
        Err(e) if e.kind == ErrorKind::Conflict => manager.stats().conflicted(repo),
        Err(_) => {}
    }
}

fn tolerant() -> RunOptions {
    RunOptions {
        allow_failure: true,
        ..Default::default()
    }
}

/// Commits what the sandbox has (after `git add` of `paths`, or of everything), unless
/// this is a re-run of the job and HEAD is already its commit.
async fn commit(
    manager: &SandboxManager,
    sandbox: &Sandbox,
    trailer: &str,
    message: &str,
    paths: &[String],
    rerun: bool,
) -> Result<(), JobError> {
    if rerun {
        let last = manager
            .git_in(sandbox, &["log", "-1", "--format=%B"], tolerant())
            .await?;
        if last.status == 0 && last.stdout_str().lines().any(|l| l.trim() == trailer) {
            return Ok(());
        }
    }
    // --sparse: a file written outside a sparse checkout's set is committed too.
    let add = ["add", "--sparse", "-A", "--"];
    // Where the worker knows that only the paths `write_files` touched can differ from HEAD
    // (see `Sandbox::status_scope`), `add` looks at those instead of every file. Read
    // before any git runs: a command that writes makes the tree unknown.
    let scoped: Vec<String> = match (paths.is_empty(), sandbox.status_scope()) {
        (true, Some(touched)) if !touched.is_empty() => {
            touched.iter().map(|p| format!(":(literal){p}")).collect()
        }
        _ => Vec::new(),
    };
    let everything: Vec<&str> = if paths.is_empty() {
        vec!["."]
    } else {
        paths.iter().map(String::as_str).collect()
    };
    // The new objects go into the mirror, where a group's leader reads them.
    let shared = shared_objects(manager, sandbox);
    let added_scoped = !scoped.is_empty() && {
        let args: Vec<&str> = add
            .iter()
            .copied()
            .chain(scoped.iter().map(String::as_str))
            .collect();
        let out = manager
            .git_in(
                sandbox,
                &args,
                RunOptions {
                    allow_failure: true,
                    ..shared.clone()
                },
            )
            .await?;
        // A touched path that is ignored makes `add` of it fail (where `add .` skips it):
        // then add the usual way.
        out.status == 0
    };
    if !added_scoped {
        let args: Vec<&str> = add.iter().copied().chain(everything).collect();
        manager.git_in(sandbox, &args, shared.clone()).await?;
    }
    let committed = manager
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
            RunOptions {
                allow_failure: true,
                ..shared
            },
        )
        .await?;
    if committed.status == 0 {
        return Ok(());
    }
    // Only now ask why: usually nothing was staged.
    let staged = manager
        .git_in(sandbox, &["diff", "--cached", "--quiet"], tolerant())
        .await?;
    if staged.status == 0 {
        return Err(JobError::invalid_input(
            "nothing to commit: the sandbox has no changes (in the given paths)",
        ));
    }
    Err(JobError::internal(format!(
        "git commit failed: {}",
        committed.stderr.trim()
    )))
}

/// One push: what the job asked for and the run it is part of.
struct PushJob<'a> {
    groups: &'a Arc<PushGroups>,
    queue: Queue,
    worker_id: &'a str,
    /// An earlier run may have committed and landed this job ([`RunContext::may_have_run_before`]).
    rerun: bool,
    job_id: &'a str,
    message: &'a str,
    paths: &'a [String],
    target: &'a str,
}

impl PushJob<'_> {
    /// Commits and pushes the sandbox's HEAD to the target by the protocol above. `busy`
    /// holds the sandbox; it is let go once the sandbox sits on the landed commit.
    async fn run(
        &self,
        manager: &Arc<SandboxManager>,
        sandbox: &Arc<Sandbox>,
        busy: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<Value, JobError> {
        let target = self.target;
        let trailer = format!("Gitfleet-Job: {}", self.job_id);
        // A first run (no earlier attempt, none given back) cannot have committed or landed
        // anything before.
        let rerun = self.rerun;
        commit(manager, sandbox, &trailer, self.message, self.paths, rerun).await?;

        // A run after a crash: if the commit already landed, say so without waiting for a
        // lock the crashed run may still hold.
        if rerun {
            manager.fetch(sandbox, target).await?;
            if let Some(landed) = alone::landed(manager, sandbox, &trailer, target).await? {
                return result(PushResult {
                    commit_sha: landed,
                    branch: target.to_string(),
                    attempts: 1,
                    rebased: false,
                });
            }
        }
        if sandbox.shallow {
            return self.push_alone(manager, sandbox, &trailer).await;
        }
        let committed = head(manager, sandbox).await?;
        let request =
            group::Request::new(Some(sandbox.objects()), committed.clone(), trailer, rerun);
        let landed = group::push(
            self.groups,
            manager,
            &self.queue,
            self.worker_id,
            target,
            &sandbox.repo,
            request,
        )
        .await?;
        if landed.rebased {
            // The job answers now; the sandbox moves onto its landed commit in the
            // background, holding the sandbox (its next op waits for the move).
            let (manager, sandbox, sha) =
                (manager.clone(), sandbox.clone(), landed.commit_sha.clone());
            tokio::spawn(async move {
                move_onto(&manager, &sandbox, &committed, &sha).await;
                drop(busy);
            });
        }
        result(PushResult {
            commit_sha: landed.commit_sha,
            branch: target.to_string(),
            attempts: landed.attempts as u64,
            rebased: landed.rebased,
        })
    }

    async fn push_alone(
        &self,
        manager: &SandboxManager,
        sandbox: &Sandbox,
        trailer: &str,
    ) -> Result<Value, JobError> {
        let target = self.target;
        let settings = self.groups.settings();
        let lock = self
            .queue
            .lock(
                self.worker_id,
                &lock_name(&sandbox.repo, target),
                settings.lock_ttl,
                settings.lock_wait,
            )
            .await
            .map_err(lock_error)?
            .ok_or_else(|| lock_timeout(target, settings.lock_wait))?;
        let result = alone::push_locked(manager, sandbox, trailer, target, &lock).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the push lock; it expires by itself");
        }
        result
    }
}

/// Moves the sandbox's branch from `committed` onto `landed` (its commit as replayed onto
/// the branch), keeping uncommitted changes, as a rebase in the sandbox would have left
/// it. If that cannot be done cleanly, or would take the sandbox over its limits (the
/// others' commits it lands on bring their files), the sandbox stays where it was: the
/// push has landed either way, and a later push of the old commit is recognised as
/// already applied.
async fn move_onto(manager: &SandboxManager, sandbox: &Sandbox, committed: &str, landed: &str) {
    let what = format!("push: moving onto the landed commit {landed} would leave the sandbox with");
    let usage = match manager.check_move(&what, sandbox, committed, landed).await {
        Ok(usage) => usage,
        Err(e) => {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "pushed; the sandbox stays on its own commit");
            return;
        }
    };
    let moved = manager
        .git_in(
            sandbox,
            &["reset", "--keep", "--quiet", landed, "--"],
            tolerant(),
        )
        .await;
    match moved {
        Ok(out) if out.status == 0 => sandbox.set_usage(usage),
        Ok(out) => tracing::warn!(
            sandbox = %sandbox.id,
            stderr = %out.stderr.trim(),
            "pushed, but could not move the sandbox onto its landed commit"
        ),
        Err(e) => {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "pushed, but could not move the sandbox onto its landed commit")
        }
    }
}

/// The Redis that holds the push locks: the queue's.
fn lock_queue(ctx: &RunContext) -> Result<Queue, JobError> {
    ctx.queue
        .clone()
        .ok_or_else(|| JobError::internal("pushing needs the queue's Redis for its lock"))
}

impl Op for PushOp {
    fn name(&self) -> &'static str {
        PushArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        PushArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(600)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let groups = self.groups.clone();
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let p: Commit = commit_fields(&args)?;
            let queue = lock_queue(&ctx)?;
            let target = p.target.unwrap_or(&sandbox.agent_branch).to_string();
            let busy = sandbox.lock_owned().await;
            let job = PushJob {
                groups: &groups,
                queue,
                worker_id: &ctx.worker_id,
                rerun: ctx.may_have_run_before(),
                job_id: &ctx.job_id,
                message: p.message,
                paths: &p.paths,
                target: &target,
            };
            let pushed = job.run(&manager, &sandbox, busy).await;
            let rebased = |v: &Value| v.get("rebased").and_then(Value::as_bool) == Some(true);
            count_push(&manager, &sandbox.repo, pushed.as_ref().map(rebased));
            pushed
        }
        .boxed()
    }
}

impl Op for ChangeOp {
    fn name(&self) -> &'static str {
        ChangeArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        ChangeArgs::check(args, &self.rules)
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(900)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let groups = self.groups.clone();
        let limits = self.rules.limits;
        async move {
            let manager = ctx.sandboxes()?.clone();
            let req = super::clone::request(&args, &manager, ctx.org.as_deref())?;
            let mut files = changes(&args, &limits)?;
            // No working copy is made, so only the largest-file limit of a sandbox applies.
            manager.config().limits.check_files(&files)?;
            let p = commit_fields(&args)?;
            let queue = lock_queue(&ctx)?;
            let target = p.target.unwrap_or(&req.agent_branch).to_string();
            if !p.paths.is_empty() {
                files.retain(|f| p.paths.iter().any(|scope| f.path.starts_with(scope)));
                if files.is_empty() {
                    return Err(JobError::invalid_input(
                        "nothing to commit: no file is under the given paths",
                    ));
                }
            }
            let trailer = format!("Gitfleet-Job: {}", ctx.job_id);
            let rerun = ctx.may_have_run_before();
            if rerun
                && let Some(sha) = group::landed(&manager, &req.repo, &target, &trailer).await?
            {
                return result(ChangeResult {
                    commit_sha: sha,
                    branch: target,
                    attempts: 1,
                });
            }
            let head = direct::build_commit(&manager, &req, &files, p.message, &trailer).await?;
            let request = group::Request::new(None, head, trailer, rerun);
            let landed = group::push(
                &groups,
                &manager,
                &queue,
                &ctx.worker_id,
                &target,
                &req.repo,
                request,
            )
            .await;
            count_push(&manager, &req.repo, landed.as_ref().map(|l| l.rebased));
            let landed = landed?;
            result(ChangeResult {
                commit_sha: landed.commit_sha,
                branch: target,
                attempts: landed.attempts as u64,
            })
        }
        .boxed()
    }
}
