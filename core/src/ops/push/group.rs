//! Group commit: the pushes one worker has for one `(repo, branch)` go out together, in one
//! `git push` under one hold of the branch's lock.
//!
//! Fifty agents pushing to one branch used to take the lock fifty times, each hold paying a
//! fetch, a rebase in the agent's working copy and a push (hundreds of ms each, so the last
//! agent waited tens of seconds). Now the first push to arrive leads: it takes the lock, and
//! every push for that branch that arrived meanwhile joins its batch. Under the lock the
//! leader works in the repository's bare mirror, not in any working copy:
//!
//! 1. refresh the mirror's `branch` (the remote as of now);
//! 2. for each request in arrival order, replay its commits onto the growing tip with
//!    `git merge-tree --write-tree` (a real three-way merge, no working tree) and
//!    `git commit-tree` (same message, trailer and author). A request whose commits conflict
//!    fails with `conflict` and its paths and is left out; the others go on. A commit whose
//!    change is already on the tip (the same patch landed before) is dropped, as `git rebase`
//!    drops it;
//! 3. confirm the lock is still this worker's ([`super::confirm_lock`]: one round trip, so a
//!    worker that was paused and declared dead meanwhile pushes nothing), then push the tip
//!    once, never forced. Rejected (someone outside the fleet pushed): back off with jitter
//!    and go again from 1, up to [`ATTEMPTS`] times.
//!
//! The leader can read every agent's commits because sandboxes write the objects they create
//! into the mirror's object store (see [`shared_objects`]), and it also reads the batch's
//! own stores (`GIT_ALTERNATE_OBJECT_DIRECTORIES`) for anything older.
//!
//! Nothing is lost or doubled: each commit keeps its `Gitfleet-Job` trailer; a job's reply
//! comes only after the push that carries its commit succeeded; a re-run of a job (a later
//! attempt) is answered with the commit already on the branch when its trailer is there.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::oneshot;

use super::{ATTEMPTS, confirm_lock, lock_error, lock_name, lock_timeout};
use crate::git::Steps;
use crate::sandbox::SandboxManager;
use crate::sandbox::replay::{Mirror, Replayed};
use gitfleet_contract::rules::RepoUrl;
use gitfleet_contract::steps::StepPhase;
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_queue::{Lock, Queue};

/// How pushes hold a branch's lock and how many go out together. The defaults are
/// DESIGN.md's; tests shorten them to see the lock renewed, the wait run out and the batch
/// cap reached within seconds.
#[derive(Debug, Clone, Copy)]
pub struct PushSettings {
    /// Default 30 s: the lock's TTL; renewed every third of it while held, so a push that
    /// takes longer keeps it.
    pub lock_ttl: Duration,
    /// Default 5 s: how long a push waits for the lock before it fails with `timeout`.
    pub lock_wait: Duration,
    /// Default 100: requests one `git push` carries at most (0 counts as 1); the rest wait
    /// for the next hold of the lock.
    pub max_batch: usize,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_secs(30),
            lock_wait: Duration::from_secs(5),
            max_batch: 100,
        }
    }
}

/// The push groups of the `push` and `change` ops: per worker and `(repo, branch)`, the
/// requests waiting for the running leader. A key is present exactly while its leader runs.
/// (The worker is part of the key because a group is replayed in that worker's mirror: two
/// workers in one process never share one.)
#[derive(Default)]
pub struct PushGroups {
    settings: PushSettings,
    pending: Mutex<HashMap<String, Vec<Request>>>,
}

impl PushGroups {
    /// No pushes yet; locks and batches as `settings` say.
    pub fn new(settings: PushSettings) -> Self {
        Self {
            settings,
            pending: Mutex::default(),
        }
    }

    pub fn settings(&self) -> PushSettings {
        self.settings
    }
}

impl std::fmt::Debug for PushGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushGroups").finish_non_exhaustive()
    }
}

/// One job's commits, waiting to be pushed.
pub(super) struct Request {
    /// The object store of the sandbox the commits come from, if any: read besides the
    /// mirror's.
    pub store: Option<PathBuf>,
    /// The commit to put on the branch: its commits are those not yet on it.
    pub head: String,
    /// `Gitfleet-Job: <job id>`.
    pub trailer: String,
    /// A later attempt of its job: its commit may be on the branch already.
    pub rerun: bool,
    /// Where its job records its git steps: the leader's work for the batch is a step of
    /// each of its jobs (it runs in a task of its own, which sees no job's steps).
    steps: Option<Steps>,
    reply: Option<oneshot::Sender<Result<Landed, JobError>>>,
}

impl Request {
    /// A request of the job whose task calls this (its steps are recorded there).
    pub fn new(store: Option<PathBuf>, head: String, trailer: String, rerun: bool) -> Self {
        Self {
            store,
            head,
            trailer,
            rerun,
            steps: Steps::current(),
            reply: None,
        }
    }

    fn answer(&mut self, result: Result<Landed, JobError>) {
        if let Some(tx) = self.reply.take() {
            // The job may have gone (timed out); its commit is on the branch all the same,
            // and a re-run finds it by the trailer.
            let _ = tx.send(result);
        }
    }
}

/// Where a request's commits ended up.
#[derive(Debug, Clone)]
pub(super) struct Landed {
    /// The request's last commit on the branch.
    pub commit_sha: String,
    /// The push attempt that carried it.
    pub attempts: usize,
    /// Its commits were replayed onto a newer tip (their ids changed).
    pub rebased: bool,
}

/// Pushes `request` to `target` with whatever else this worker is pushing there.
pub(super) async fn push(
    groups: &Arc<PushGroups>,
    manager: &Arc<SandboxManager>,
    queue: &Queue,
    worker_id: &str,
    target: &str,
    repo: &RepoUrl,
    mut request: Request,
) -> Result<Landed, JobError> {
    let repo = repo.clone();
    let key = format!("{worker_id}\n{}\n{target}", repo.cache_key);
    let (tx, rx) = oneshot::channel();
    request.reply = Some(tx);
    let lead = {
        let mut pending = groups.pending.lock().expect("not poisoned");
        match pending.get_mut(&key) {
            Some(waiting) => {
                waiting.push(request);
                false
            }
            None => {
                pending.insert(key.clone(), vec![request]);
                true
            }
        }
    };
    if lead {
        let leader = Leader {
            groups: groups.clone(),
            manager: manager.clone(),
            queue: queue.clone(),
            worker_id: worker_id.to_string(),
            repo,
            target: target.to_string(),
            key,
        };
        tokio::spawn(leader.run());
    }
    rx.await
        .map_err(|_| JobError::internal("the push group's leader stopped before answering"))?
}

/// The commit on `target` (refreshed now) that carries `trailer`, if there is one: how a
/// re-run of a job finds that its commit landed before, without waiting for the lock.
pub(super) async fn landed(
    manager: &SandboxManager,
    repo: &RepoUrl,
    target: &str,
    trailer: &str,
) -> Result<Option<String>, JobError> {
    let refreshed = manager.mirrors().refresh(repo, target).await?;
    let mirror = Mirror::new(manager, repo, []);
    match refreshed.tip {
        Some(tip) => mirror.find_trailer(&tip, trailer).await,
        None => Ok(None),
    }
}

/// Runs batches for one `(repo, branch)` until no request waits.
struct Leader {
    groups: Arc<PushGroups>,
    manager: Arc<SandboxManager>,
    queue: Queue,
    worker_id: String,
    repo: RepoUrl,
    target: String,
    key: String,
}

impl Leader {
    async fn run(self) {
        // However this task ends (even by a panic), the key goes, so the next push leads
        // again; requests still waiting are dropped, and their jobs fail instead of hanging.
        let _guard = KeyGuard {
            groups: self.groups.clone(),
            key: self.key.clone(),
        };
        let settings = self.groups.settings();
        loop {
            let lock = self
                .queue
                .lock(
                    &self.worker_id,
                    &lock_name(&self.repo, &self.target),
                    settings.lock_ttl,
                    settings.lock_wait,
                )
                .await;
            let mut batch = self.take();
            match lock {
                Err(e) => {
                    let e = lock_error(e);
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                }
                Ok(None) => {
                    let e = lock_timeout(&self.target, settings.lock_wait);
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                }
                Ok(Some(lock)) => {
                    let steps = batch.iter().filter_map(|r| r.steps.clone());
                    match Steps::shared(steps, StepPhase::PushGroup) {
                        Some(steps) => steps.scope(self.run_batch(&mut batch, &lock)).await,
                        None => self.run_batch(&mut batch, &lock).await,
                    }
                    if let Err(e) = lock.release().await {
                        tracing::warn!(error = %e, "could not release the push lock; it expires by itself");
                    }
                }
            }
            let mut pending = self.groups.pending.lock().expect("not poisoned");
            if pending.get(&self.key).is_none_or(Vec::is_empty) {
                pending.remove(&self.key);
                return;
            }
        }
    }

    /// The requests waiting now (at most [`PushSettings::max_batch`], oldest first).
    fn take(&self) -> Vec<Request> {
        let mut pending = self.groups.pending.lock().expect("not poisoned");
        let waiting = pending
            .get_mut(&self.key)
            .expect("present while the leader runs");
        let n = waiting.len().min(self.groups.settings.max_batch.max(1));
        waiting.drain(..n).collect()
    }

    /// Replays the batch onto the branch and pushes it (see the module doc); answers every
    /// request.
    async fn run_batch(&self, batch: &mut [Request], lock: &Lock) {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(ATTEMPTS)
            .build();
        let mirror = Mirror::new(
            &self.manager,
            &self.repo,
            batch.iter().filter_map(|r| r.store.as_ref()),
        );
        for attempt in 1..=ATTEMPTS {
            let planned = match self.plan(&mirror, batch).await {
                Ok(p) => p,
                Err(e) => {
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                    return;
                }
            };
            let pushed = match &planned.tip {
                Some(tip) if planned.tip != planned.base => {
                    // Fencing: still ours, right before the push (one round trip).
                    match confirm_lock(lock, &self.target).await {
                        Ok(()) => mirror.push(tip, &self.target).await,
                        Err(e) => {
                            batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                            return;
                        }
                    }
                }
                // Nothing new: every request was already on the branch (or failed).
                _ => Ok(()),
            };
            match pushed {
                Ok(()) => {
                    for (request, outcome) in batch.iter_mut().zip(planned.outcomes) {
                        request.answer(outcome.map(|(commit_sha, rebased)| Landed {
                            commit_sha,
                            attempts: attempt,
                            rebased,
                        }));
                    }
                    return;
                }
                Err(e) if e.kind == ErrorKind::Conflict && attempt < ATTEMPTS => {
                    let wait = delays.next().unwrap_or(Duration::from_secs(4));
                    tracing::info!(
                        attempt,
                        requests = batch.len(),
                        wait_ms = wait.as_millis() as u64,
                        "push rejected; replaying onto the new tip and retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                    return;
                }
            }
        }
    }

    /// Refreshes the branch and replays each request onto it.
    async fn plan(&self, mirror: &Mirror<'_>, batch: &[Request]) -> Result<Plan, JobError> {
        let base = self
            .manager
            .mirrors()
            .refresh(&self.repo, &self.target)
            .await?
            .tip;
        let mut tip = base.clone();
        let mut tip_tree = match &base {
            Some(b) => Some(mirror.tree_of(b).await?),
            None => None,
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            if request.rerun
                && let Some(b) = &base
                && let Some(sha) = mirror.find_trailer(b, &request.trailer).await?
            {
                outcomes.push(Ok((sha, false)));
                continue;
            }
            let Some(current) = tip.clone() else {
                // The branch is new: the first request's HEAD makes it.
                tip_tree = Some(mirror.tree_of(&request.head).await?);
                tip = Some(request.head.clone());
                outcomes.push(Ok((request.head.clone(), false)));
                continue;
            };
            match mirror
                .replay(&request.head, &current, tip_tree.as_deref())
                .await
            {
                Ok(Replayed::Unchanged) => outcomes.push(Ok((request.head.clone(), false))),
                Ok(Replayed::FastForward) => {
                    tip_tree = Some(mirror.tree_of(&request.head).await?);
                    tip = Some(request.head.clone());
                    outcomes.push(Ok((request.head.clone(), false)));
                }
                Ok(Replayed::Onto { commit, tree }) => {
                    tip_tree = Some(tree);
                    tip = Some(commit.clone());
                    outcomes.push(Ok((commit, true)));
                }
                Ok(Replayed::Conflict(paths)) => outcomes.push(Err(JobError::new(
                    ErrorKind::Conflict,
                    format!(
                        "putting this job's commit onto {} conflicts in: {}",
                        self.target,
                        paths.join(", ")
                    ),
                ))),
                Err(e) => outcomes.push(Err(e)),
            }
        }
        Ok(Plan {
            base,
            tip,
            outcomes,
        })
    }
}

struct Plan {
    /// The branch as the remote had it.
    base: Option<String>,
    /// The branch after the batch.
    tip: Option<String>,
    /// Per request: its last commit on `tip` and whether it was replayed, or why not.
    outcomes: Vec<Result<(String, bool), JobError>>,
}

/// Removes a group's key when its leader ends.
struct KeyGuard {
    groups: Arc<PushGroups>,
    key: String,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.groups.pending.lock() {
            pending.remove(&self.key);
        }
    }
}
