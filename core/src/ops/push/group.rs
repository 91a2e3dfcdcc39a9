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
//! 3. push the tip once, never forced. Rejected (someone outside the fleet pushed): back off
//!    with jitter and go again from 1, up to [`ATTEMPTS`] times.
//!
//! The leader can read every agent's commits because sandboxes write the objects they create
//! into the mirror's object store (see [`shared_objects`]), and it also reads the batch's
//! own stores (`GIT_ALTERNATE_OBJECT_DIRECTORIES`) for anything older.
//!
//! Nothing is lost or doubled: each commit keeps its `Gitfleet-Job` trailer; a job's reply
//! comes only after the push that carries its commit succeeded; a re-run of a job (a later
//! attempt) is answered with the commit already on the branch when its trailer is there.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::oneshot;

use super::{ATTEMPTS, LOCK_TTL, LOCK_WAIT, lock_name};
use crate::git::RunOptions;
use crate::sandbox::{Sandbox, SandboxManager};
use gitfleet_contract::rules::RepoUrl;
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_queue::Queue;

/// Requests one push carries at most; the rest wait for the next hold of the lock.
const MAX_BATCH: usize = 100;

/// The push groups of one worker: per `(repo, branch)`, the requests waiting for the
/// running leader. A key is present exactly while its leader runs.
#[derive(Default)]
pub struct PushGroups {
    pending: Mutex<HashMap<String, Vec<Request>>>,
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
    reply: Option<oneshot::Sender<Result<Landed, JobError>>>,
}

impl Request {
    pub fn new(store: Option<PathBuf>, head: String, trailer: String, rerun: bool) -> Self {
        Self {
            store,
            head,
            trailer,
            rerun,
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
    manager: &Arc<SandboxManager>,
    queue: &Queue,
    worker_id: &str,
    target: &str,
    repo: &RepoUrl,
    mut request: Request,
) -> Result<Landed, JobError> {
    let repo = repo.clone();
    let key = format!("{}\n{target}", repo.cache_key);
    let (tx, rx) = oneshot::channel();
    request.reply = Some(tx);
    let lead = {
        let mut pending = manager.push_groups().pending.lock().expect("not poisoned");
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
            manager: self.manager.clone(),
            key: self.key.clone(),
        };
        loop {
            let lock = self
                .queue
                .lock(
                    &self.worker_id,
                    &lock_name(&self.repo, &self.target),
                    LOCK_TTL,
                    LOCK_WAIT,
                )
                .await;
            let mut batch = self.take();
            match lock {
                Err(e) => {
                    let e = JobError::new(ErrorKind::Network, format!("push lock: {e}"));
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                }
                Ok(None) => {
                    let e = JobError::timeout(format!(
                        "branch {} is being pushed by others; lock not free within {} s",
                        self.target,
                        LOCK_WAIT.as_secs()
                    ));
                    batch.iter_mut().for_each(|r| r.answer(Err(e.clone())));
                }
                Ok(Some(lock)) => {
                    self.run_batch(&mut batch).await;
                    if let Err(e) = lock.release().await {
                        tracing::warn!(error = %e, "could not release the push lock; it expires by itself");
                    }
                }
            }
            let mut pending = self
                .manager
                .push_groups()
                .pending
                .lock()
                .expect("not poisoned");
            if pending.get(&self.key).is_none_or(Vec::is_empty) {
                pending.remove(&self.key);
                return;
            }
        }
    }

    /// The requests waiting now (at most [`MAX_BATCH`], oldest first).
    fn take(&self) -> Vec<Request> {
        let mut pending = self
            .manager
            .push_groups()
            .pending
            .lock()
            .expect("not poisoned");
        let waiting = pending
            .get_mut(&self.key)
            .expect("present while the leader runs");
        let n = waiting.len().min(MAX_BATCH);
        waiting.drain(..n).collect()
    }

    /// Replays the batch onto the branch and pushes it (see the module doc); answers every
    /// request.
    async fn run_batch(&self, batch: &mut [Request]) {
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
                Some(tip) if planned.tip != planned.base => mirror.push(tip, &self.target).await,
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
    manager: Arc<SandboxManager>,
    key: String,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.manager.push_groups().pending.lock() {
            pending.remove(&self.key);
        }
    }
}

/// How a request's commits went onto the tip.
pub(crate) enum Replayed {
    /// Nothing to add: its HEAD is on the tip already.
    Unchanged,
    /// Its commits sit right on the tip: the tip becomes its HEAD as it is.
    FastForward,
    /// Replayed: the new tip (its last commit) and that commit's tree.
    Onto { commit: String, tree: String },
    /// A commit does not apply: these paths conflict. Nothing was changed.
    Conflict(Vec<String>),
}

/// Git in a repository's mirror, seeing the batch's sandboxes' objects too.
pub(crate) struct Mirror<'a> {
    manager: &'a SandboxManager,
    repo: &'a RepoUrl,
    path: PathBuf,
    alternates: Vec<(OsString, OsString)>,
}

/// One commit as `git cat-file` shows it: what a replay keeps.
struct CommitInfo {
    sha: String,
    /// First parent (`None` for a root commit).
    parent: Option<String>,
    author_name: String,
    author_email: String,
    /// `<seconds> <zone>`, git's own format.
    author_date: String,
    message: Vec<u8>,
}

impl<'a> Mirror<'a> {
    /// Git in `repo`'s mirror, reading `stores` (sandboxes' own object stores) too.
    pub(crate) fn new<'s>(
        manager: &'a SandboxManager,
        repo: &'a RepoUrl,
        stores: impl IntoIterator<Item = &'s PathBuf>,
    ) -> Self {
        let mut alternates: Vec<String> = Vec::new();
        for store in stores {
            let store = quote_alternate(&store.to_string_lossy());
            if !alternates.contains(&store) {
                alternates.push(store);
            }
        }
        Self {
            manager,
            repo,
            path: manager.mirrors().path(repo),
            alternates: vec![(
                OsString::from("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
                OsString::from(alternates.join(":")),
            )],
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            env: self.alternates.clone(),
            ..Default::default()
        }
    }

    pub(crate) async fn git(&self, args: &[&str]) -> Result<crate::git::GitOutput, JobError> {
        self.manager
            .git()
            .run(&self.path, args, self.options())
            .await
    }

    /// Like [`Self::git`], returning a failed exit as `Ok`.
    pub(crate) async fn git_tolerant(
        &self,
        args: &[&str],
    ) -> Result<crate::git::GitOutput, JobError> {
        self.manager
            .git()
            .run(
                &self.path,
                args,
                RunOptions {
                    allow_failure: true,
                    ..self.options()
                },
            )
            .await
    }

    /// `git merge-tree --write-tree` of `ours` and `theirs` (with `merge_base`, a
    /// cherry-pick of `theirs`' change; without, their merge base): the merged tree, or the
    /// conflicting paths.
    async fn merge_tree(
        &self,
        merge_base: Option<&str>,
        ours: &str,
        theirs: &str,
    ) -> Result<Result<String, Vec<String>>, JobError> {
        let base_flag = merge_base.map(|b| format!("--merge-base={b}"));
        let mut args = vec![
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
        ];
        args.extend(base_flag.as_deref());
        args.extend(["--end-of-options", ours, theirs]);
        let merged = self.git_tolerant(&args).await?;
        let out = merged.stdout_str();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        let tree = fields.next().unwrap_or("").trim().to_string();
        match merged.status {
            0 => Ok(Ok(tree)),
            1 => {
                let mut paths: Vec<String> = fields.map(str::to_string).collect();
                paths.dedup();
                Ok(Err(paths))
            }
            _ => Err(JobError::internal(format!(
                "git merge-tree failed: {}",
                merged.stderr.trim()
            ))),
        }
    }

    /// Merges `theirs` into `ours` (neither an ancestor of the other): the merge commit, or
    /// the conflicting paths.
    pub(crate) async fn merge(
        &self,
        ours: &str,
        theirs: &str,
        their_name: &str,
    ) -> Result<Result<String, Vec<String>>, JobError> {
        let tree = match self.merge_tree(None, ours, theirs).await? {
            Ok(tree) => tree,
            Err(paths) => return Ok(Err(paths)),
        };
        let mut options = self.options();
        options.stdin = Some(format!("Merge {their_name}\n").into_bytes());
        let made = self
            .manager
            .git()
            .run(
                &self.path,
                &[
                    "commit-tree",
                    "-p",
                    ours,
                    "-p",
                    theirs,
                    "-F",
                    "-",
                    "--end-of-options",
                    &tree,
                ],
                options,
            )
            .await?;
        Ok(Ok(made.stdout_str().trim().to_string()))
    }

    pub(crate) async fn tree_of(&self, commit: &str) -> Result<String, JobError> {
        let spec = format!("{commit}^{{tree}}");
        let out = self
            .git(&["rev-parse", "--verify", "--end-of-options", &spec])
            .await?;
        Ok(out.stdout_str().trim().to_string())
    }

    /// The commit on `tip`'s history that carries `trailer`, if any.
    async fn find_trailer(&self, tip: &str, trailer: &str) -> Result<Option<String>, JobError> {
        let grep = format!("--grep={trailer}");
        let out = self
            .git(&[
                "log",
                "-F",
                &grep,
                "--format=%H",
                "-n",
                "1",
                "--end-of-options",
                tip,
                "--",
            ])
            .await?;
        let sha = out.stdout_str().trim().to_string();
        Ok((!sha.is_empty()).then_some(sha))
    }

    /// Puts the commits of `head` that `tip` lacks on top of `tip` (whose tree is
    /// `tip_tree`).
    pub(crate) async fn replay(
        &self,
        head: &str,
        tip: &str,
        tip_tree: Option<&str>,
    ) -> Result<Replayed, JobError> {
        let not_tip = format!("^{tip}");
        let listed = self
            .git(&[
                "rev-list",
                "--reverse",
                "--topo-order",
                "--parents",
                "--end-of-options",
                head,
                &not_tip,
            ])
            .await?;
        let listed = listed.stdout_str();
        let commits: Vec<Vec<&str>> = listed
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|c: &Vec<&str>| !c.is_empty())
            .collect();
        if commits.is_empty() {
            return Ok(Replayed::Unchanged);
        }
        // Linear, and starting right at the tip: nothing to rewrite.
        let linear_from_tip = commits.iter().enumerate().all(|(i, c)| {
            let expected = if i == 0 { tip } else { commits[i - 1][0] };
            c.len() == 2 && c[1] == expected
        });
        if linear_from_tip {
            return Ok(Replayed::FastForward);
        }
        let infos = self.read_commits(commits.iter().map(|c| c[0])).await?;
        let mut current = tip.to_string();
        let mut current_tree = tip_tree.map(str::to_string);
        for info in infos {
            let Some(parent) = &info.parent else {
                return Err(JobError::invalid_input(format!(
                    "commit {} has no parent and cannot be put on the branch's history",
                    info.sha
                )));
            };
            let tree = match self.merge_tree(Some(parent), &current, &info.sha).await? {
                Ok(tree) => tree,
                Err(paths) => return Ok(Replayed::Conflict(paths)),
            };
            if current_tree.as_deref() == Some(tree.as_str()) {
                // The same change is on the tip already.
                continue;
            }
            let mut options = self.options();
            options.stdin = Some(info.message.clone());
            options.env.extend([
                ("GIT_AUTHOR_NAME".into(), info.author_name.clone().into()),
                ("GIT_AUTHOR_EMAIL".into(), info.author_email.clone().into()),
                ("GIT_AUTHOR_DATE".into(), info.author_date.clone().into()),
            ]);
            let made = self
                .manager
                .git()
                .run(
                    &self.path,
                    &[
                        "commit-tree",
                        "-p",
                        &current,
                        "-F",
                        "-",
                        "--end-of-options",
                        &tree,
                    ],
                    options,
                )
                .await?;
            current = made.stdout_str().trim().to_string();
            current_tree = Some(tree);
        }
        match current_tree {
            Some(tree) if current != tip => Ok(Replayed::Onto {
                commit: current,
                tree,
            }),
            _ => Ok(Replayed::Unchanged),
        }
    }

    /// Reads commits with one `git cat-file --batch`.
    async fn read_commits(
        &self,
        shas: impl Iterator<Item = &str>,
    ) -> Result<Vec<CommitInfo>, JobError> {
        let input: String = shas.map(|s| format!("{s}\n")).collect();
        let mut options = self.options();
        options.stdin = Some(input.into_bytes());
        let out = self
            .manager
            .git()
            .run(&self.path, &["cat-file", "--batch"], options)
            .await?;
        if out.truncated {
            return Err(JobError::invalid_input(
                "the commits to push are larger than git output may be",
            ));
        }
        parse_batch(&out.stdout)
            .ok_or_else(|| JobError::internal("git cat-file --batch: output not understood"))
    }

    /// Pushes `tip` to `branch`, never forced.
    async fn push(&self, tip: &str, branch: &str) -> Result<(), JobError> {
        let refspec = format!("{tip}:refs/heads/{branch}");
        self.manager
            .git()
            .run(
                &self.path,
                &["push", "--porcelain", "--quiet", "origin", &refspec],
                RunOptions {
                    remote: Some(self.repo.url.clone()),
                    timeout: Some(Duration::from_secs(300)),
                    ..self.options()
                },
            )
            .await
            .map(|_| ())
    }
}

/// An entry of `GIT_ALTERNATE_OBJECT_DIRECTORIES`: quoted (C style) when it holds the
/// separator or a quote, as git reads it.
fn quote_alternate(path: &str) -> String {
    if !path.contains([':', '"', '\\']) {
        return path.to_string();
    }
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Parses `git cat-file --batch` output for commits.
fn parse_batch(mut out: &[u8]) -> Option<Vec<CommitInfo>> {
    let mut infos = Vec::new();
    while !out.is_empty() {
        let header_end = out.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&out[..header_end]).ok()?;
        let mut parts = header.split(' ');
        let (sha, kind, size) = (parts.next()?, parts.next()?, parts.next()?);
        if kind != "commit" {
            return None;
        }
        let size: usize = size.parse().ok()?;
        let body = out.get(header_end + 1..header_end + 1 + size)?;
        infos.push(parse_commit(sha, body)?);
        out = out.get(header_end + 1 + size + 1..)?;
    }
    Some(infos)
}

fn parse_commit(sha: &str, body: &[u8]) -> Option<CommitInfo> {
    let split = body.windows(2).position(|w| w == b"\n\n")?;
    let headers = std::str::from_utf8(&body[..split]).ok()?;
    let message = body[split + 2..].to_vec();
    let mut parent = None;
    let mut author = None;
    for line in headers.lines() {
        if let Some(p) = line.strip_prefix("parent ") {
            parent.get_or_insert_with(|| p.to_string());
        } else if let Some(a) = line.strip_prefix("author ") {
            author = Some(a);
        }
    }
    // `Name <email> 1700000000 +0000`
    let author = author?;
    let open = author.find(" <")?;
    let close = author[open..].find("> ")? + open;
    Some(CommitInfo {
        sha: sha.to_string(),
        parent,
        author_name: author[..open].to_string(),
        author_email: author[open + 2..close].to_string(),
        author_date: author[close + 2..].to_string(),
        message,
    })
}

/// The environment that makes git in a sandbox write the objects it creates (`add`,
/// `commit`, `rebase`) into the repository's mirror, where every sandbox of this worker
/// reads them (each has the mirror as its alternate). The sandbox's own store stays
/// readable. This relies on auto-gc being off (the worker's git config, see
/// [`crate::git`]): a gc started from a sandbox would see only the sandbox's refs and must
/// never prune the mirror.
pub(crate) fn shared_objects(manager: &SandboxManager, sandbox: &Sandbox) -> RunOptions {
    if sandbox.shallow {
        // A shallow copy was not cloned with the mirror as its alternate: its objects stay
        // its own, and it pushes by itself.
        return RunOptions::default();
    }
    let mirror_objects = manager.mirrors().path(&sandbox.repo).join("objects");
    let own = sandbox.objects();
    RunOptions {
        env: vec![
            (
                OsString::from("GIT_OBJECT_DIRECTORY"),
                mirror_objects.into_os_string(),
            ),
            (
                OsString::from("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
                OsString::from(quote_alternate(&own.to_string_lossy())),
            ),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cat_file_batch_output() {
        let c1 = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent aaaa\nparent bbbb\nauthor A B <a@b.c> 1700000000 +0100\ncommitter C <c@d> 1700000001 +0000\n\nSubject\n\nGitfleet-Job: 01J\n";
        let c2 = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor gitfleet <gitfleet@localhost> 1 +0000\ncommitter C <c@d> 1 +0000\n\nroot\n";
        let mut out = Vec::new();
        out.extend_from_slice(format!("1111 commit {}\n", c1.len()).as_bytes());
        out.extend_from_slice(c1);
        out.push(b'\n');
        out.extend_from_slice(format!("2222 commit {}\n", c2.len()).as_bytes());
        out.extend_from_slice(c2);
        out.push(b'\n');
        let infos = parse_batch(&out).expect("parsed");
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].sha, "1111");
        assert_eq!(infos[0].parent.as_deref(), Some("aaaa"));
        assert_eq!(infos[0].author_name, "A B");
        assert_eq!(infos[0].author_email, "a@b.c");
        assert_eq!(infos[0].author_date, "1700000000 +0100");
        assert_eq!(infos[0].message, b"Subject\n\nGitfleet-Job: 01J\n");
        assert_eq!(infos[1].parent, None);
        assert_eq!(infos[1].message, b"root\n");
    }

    #[test]
    fn refuses_other_objects_and_short_output() {
        assert!(parse_batch(b"1111 blob 3\nabc\n").is_none());
        assert!(parse_batch(b"1111 commit 99\nabc\n").is_none());
        assert!(parse_batch(b"1111 missing\n").is_none());
    }

    #[test]
    fn quotes_alternates_only_when_needed() {
        assert_eq!(quote_alternate("/a/b"), "/a/b");
        assert_eq!(quote_alternate("/a:b"), "\"/a:b\"");
        assert_eq!(quote_alternate("/a\"b"), "\"/a\\\"b\"");
    }
}
