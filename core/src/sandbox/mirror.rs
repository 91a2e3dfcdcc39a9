//! A bare mirror per repository on each worker. Working copies are cloned from it with
//! `--shared` (no object is copied) and fetch from it, so the network is crossed once per
//! repository and change, not once per agent. One fetch at a time per repository: the
//! others wait for it and then use its result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::git::validate::RepoUrl;
use crate::git::{Git, RunOptions};
use crate::job::JobError;

/// The mirrors of one worker.
pub struct Mirrors {
    root: PathBuf,
    git: Git,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<MirrorState>>>>,
}

#[derive(Default)]
struct MirrorState {
    /// When the last fetch that this worker ran began.
    fetched_at: Option<Instant>,
    /// Per branch: when a check that the remote branch had not moved began.
    checked_at: HashMap<String, Instant>,
}

/// The flags that let git read a local mirror even though `file` is not an allowed
/// protocol for jobs: these calls never take a URL from a job.
pub(crate) const LOCAL: [&str; 2] = ["-c", "protocol.file.allow=always"];

impl Mirrors {
    pub fn new(root: PathBuf, git: Git) -> Self {
        Self {
            root,
            git,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn path(&self, repo: &RepoUrl) -> PathBuf {
        self.root.join(format!("{}.git", repo.cache_key))
    }

    /// Makes sure the mirror of `repo` exists and holds `branch` as the remote had it no
    /// earlier than the moment of this call. If another job's fetch (or check) began after
    /// this call, it is enough, and this call only waits for it. An existing mirror is first
    /// asked whether the remote branch moved (`ls-remote` of that one ref, no pack
    /// negotiation); only if it did is it fetched.
    ///
    /// Returns the mirror's path, and whether this refresh saw `branch` on the remote and in
    /// the mirror (so a caller need not check again).
    pub async fn refresh(&self, repo: &RepoUrl, branch: &str) -> Result<(PathBuf, bool), JobError> {
        let asked_at = Instant::now();
        let lock = {
            let mut locks = self.locks.lock().expect("not poisoned");
            locks.entry(repo.cache_key.clone()).or_default().clone()
        };
        let mut state = lock.lock().await;
        let path = self.path(repo);
        let fresh = |t: Option<&Instant>| t.is_some_and(|t| *t >= asked_at);
        if fresh(state.checked_at.get(branch)) {
            return Ok((path, true));
        }
        if fresh(state.fetched_at.as_ref()) {
            return Ok((path, false));
        }
        let started = Instant::now();
        let remote = RunOptions {
            remote: Some(repo.url.clone()),
            timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let exists = tokio::fs::try_exists(path.join("HEAD"))
            .await
            .unwrap_or(false);
        if exists && self.unmoved(&path, branch, remote.clone()).await? {
            state.checked_at.insert(branch.to_string(), started);
            return Ok((path, true));
        }
        if exists {
            self.git
                .run(
                    &path,
                    &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
                    remote,
                )
                .await?;
        } else {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(|e| JobError::internal(format!("cannot create the mirror root: {e}")))?;
            let tmp = self
                .root
                .join(format!("{}.tmp-{}", repo.cache_key, ulid::Ulid::new()));
            let tmp_s = tmp.to_string_lossy().into_owned();
            let result = self
                .git
                .run(
                    &self.root,
                    &[
                        "clone",
                        "--bare",
                        "--no-tags",
                        "--quiet",
                        "--",
                        &repo.url,
                        &tmp_s,
                    ],
                    remote,
                )
                .await;
            if let Err(e) = result {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                return Err(e);
            }
            // Branches as they are on the remote, refreshed by every fetch.
            self.git
                .run(
                    &tmp,
                    &[
                        "config",
                        "remote.origin.fetch",
                        "+refs/heads/*:refs/heads/*",
                    ],
                    RunOptions::default(),
                )
                .await?;
            tokio::fs::rename(&tmp, &path).await.map_err(|e| {
                JobError::internal(format!("cannot move the new mirror in place: {e}"))
            })?;
        }
        tracing::debug!(repo = %repo.cache_key, ms = started.elapsed().as_millis() as u64, "mirror refreshed");
        state.fetched_at = Some(started);
        state.checked_at.clear();
        Ok((path, false))
    }

    /// Whether the remote's `branch` is where the mirror has it.
    async fn unmoved(
        &self,
        mirror: &Path,
        branch: &str,
        remote: RunOptions,
    ) -> Result<bool, JobError> {
        let reference = format!("refs/heads/{branch}");
        let listed = self
            .git
            .run(
                mirror,
                &["ls-remote", "--quiet", "origin", &reference],
                remote,
            )
            .await?;
        let theirs = listed.stdout_str();
        let theirs = theirs.split_whitespace().next().unwrap_or("");
        if theirs.is_empty() {
            return Ok(false);
        }
        let ours = self
            .git
            .run(
                mirror,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    &reference,
                ],
                RunOptions {
                    allow_failure: true,
                    ..Default::default()
                },
            )
            .await?;
        Ok(ours.stdout_str().trim() == theirs)
    }
}
