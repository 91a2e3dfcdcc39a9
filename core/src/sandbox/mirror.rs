//! A bare mirror per repository on each worker. Working copies are cloned from it with
//! `--shared` (no object is copied) and fetch from it, so the network is crossed once per
//! repository and change, not once per agent. One fetch at a time per repository: the
//! others wait for it and then use its result.
//!
//! A mirror only ever gains objects (fetches add, `--prune` drops refs, never objects, and
//! gc is off), so the working copies borrowing its objects are safe while it is refreshed in
//! place, by a job or by [`Mirrors::refresh_all`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::stats::RepoStats;
use crate::git::{Git, RunOptions, in_phase};
use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;
use gitfleet_contract::steps::StepPhase;

/// The mirrors of one worker.
pub struct Mirrors {
    root: PathBuf,
    git: Git,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<MirrorState>>>>,
    /// Counts every fetch from a remote (for the Repositories view).
    stats: Arc<RepoStats>,
}

#[derive(Default)]
struct MirrorState {
    /// The repository, once a job has asked for it.
    repo: Option<RepoUrl>,
    /// When the last fetch that this worker ran began.
    fetched_at: Option<Instant>,
    /// Per branch: when a check that the remote branch had not moved began.
    checked_at: HashMap<String, Instant>,
    /// The mirror's branches and their commits, read after every fetch. Only this worker
    /// writes the mirror, always under this state's lock, so this is what the mirror holds.
    tips: Option<HashMap<String, String>>,
}

/// What [`Mirrors::refresh`] leaves.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The mirror.
    pub path: PathBuf,
    /// The commit the branch is at in the mirror, as the remote had it no earlier than the
    /// moment of the call; `None` when the remote has no such branch.
    pub tip: Option<String>,
    /// This call cloned the mirror: the worker had none of the repository.
    pub created: bool,
}

/// What [`Mirrors::refresh_all`] did.
#[derive(Debug, Default)]
pub struct RefreshedAll {
    /// Mirrors fetched.
    pub refreshed: usize,
    /// Mirrors whose fetch failed (cache key, error); the others were still fetched.
    pub failed: Vec<(String, JobError)>,
}

/// The flags that let git read a local mirror even though `file` is not an allowed
/// protocol for jobs: these calls never take a URL from a job.
pub(crate) const LOCAL: [&str; 2] = ["-c", "protocol.file.allow=always"];

/// Protocol flags for talking to `repo`. Over `git://`, protocol v0: git's v2 client writes
/// its `ls-refs` request one pkt-line per `write(2)` on a socket without `TCP_NODELAY`, so
/// Nagle holds the rest of the request until the server's delayed ACK (≈ 40 ms on Linux) on
/// every ref listing (`ls-remote`, and the first half of every fetch). v0 has the server
/// speak first and the client answer in one write. HTTP(S) (curl sends one request with
/// `TCP_NODELAY`) and the others keep v2.
fn protocol_flags(repo: &RepoUrl) -> &'static [&'static str] {
    if repo.scheme == "git" {
        &["-c", "protocol.version=0"]
    } else {
        &[]
    }
}

/// Whether `s` looks like an object id (sha1 or sha256, lowercase hex).
fn is_object_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Mirrors {
    pub fn new(root: PathBuf, git: Git, stats: Arc<RepoStats>) -> Self {
        Self {
            root,
            git,
            locks: Mutex::new(HashMap::new()),
            stats,
        }
    }

    pub fn path(&self, repo: &RepoUrl) -> PathBuf {
        self.path_of_key(&repo.cache_key)
    }

    /// The mirror of the repository whose cache key is `key`.
    pub fn path_of_key(&self, key: &str) -> PathBuf {
        self.root.join(format!("{key}.git"))
    }

    fn state(&self, key: &str) -> Arc<tokio::sync::Mutex<MirrorState>> {
        let mut locks = self.locks.lock().expect("not poisoned");
        locks.entry(key.to_string()).or_default().clone()
    }

    /// How a call that reaches `repo`'s remote runs: within the worker's time limit for one
    /// git process (`GITFLEET_GIT_TIMEOUT_SECS`), like every other git call; a remote that
    /// never answers is exactly what that limit is for.
    fn remote_options(repo: &RepoUrl) -> RunOptions {
        RunOptions {
            remote: Some(repo.clone()),
            ..Default::default()
        }
    }

    /// Makes sure the mirror of `repo` exists and holds `branch` as the remote had it no
    /// earlier than the moment of this call. If another job's fetch (or check) began after
    /// this call, it is enough, and this call only waits for it. An existing mirror is first
    /// asked whether the remote branch moved (`ls-remote` of that one ref, compared with
    /// the mirror's tip as last read): one git process when nothing moved; only if it did is
    /// the mirror fetched.
    ///
    /// Within a recorded run, its git calls are the run's steps in phase `mirror`.
    pub async fn refresh(&self, repo: &RepoUrl, branch: &str) -> Result<Refreshed, JobError> {
        in_phase(StepPhase::Mirror, self.refresh_now(repo, branch)).await
    }

    async fn refresh_now(&self, repo: &RepoUrl, branch: &str) -> Result<Refreshed, JobError> {
        let asked_at = Instant::now();
        let lock = self.state(&repo.cache_key);
        let mut state = lock.lock().await;
        state.repo.get_or_insert_with(|| repo.clone());
        let path = self.path(repo);
        let fresh = |t: Option<&Instant>| t.is_some_and(|t| *t >= asked_at);
        let up_to_date = fresh(state.checked_at.get(branch)) || fresh(state.fetched_at.as_ref());
        if up_to_date && let Some(tips) = &state.tips {
            return Ok(Refreshed {
                tip: tips.get(branch).cloned(),
                path,
                created: false,
            });
        }
        let started = Instant::now();
        let exists = tokio::fs::try_exists(path.join("HEAD"))
            .await
            .unwrap_or(false);
        if exists {
            if state.tips.is_none() {
                state.tips = Some(self.read_tips(&path).await?);
            }
            let theirs = self.remote_tip(&path, repo, branch).await?;
            let ours = state.tips.as_ref().and_then(|t| t.get(branch));
            if let Some(theirs) = theirs
                && ours == Some(&theirs)
            {
                state.checked_at.insert(branch.to_string(), started);
                return Ok(Refreshed {
                    tip: Some(theirs),
                    path,
                    created: false,
                });
            }
            self.fetch(&mut state, &path, repo, started).await?;
        } else {
            self.create(&mut state, &path, repo, started).await?;
        }
        // For the organization the job reaches the repository for.
        self.stats.fetched(repo, repo.org.as_deref(), path.clone());
        tracing::debug!(repo = %repo.cache_key, ms = started.elapsed().as_millis() as u64, "mirror refreshed");
        Ok(Refreshed {
            tip: state.tips.as_ref().and_then(|t| t.get(branch).cloned()),
            path,
            created: !exists,
        })
    }

    /// Fetches every mirror this worker has (the weekly maintenance: a mirror seldom asked
    /// for still gets its new commits and commit-graph ahead of its next clone). One failing
    /// repository does not stop the others.
    pub async fn refresh_all(&self) -> RefreshedAll {
        in_phase(StepPhase::Mirror, self.refresh_all_now()).await
    }

    async fn refresh_all_now(&self) -> RefreshedAll {
        let states: Vec<_> = self
            .locks
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        let mut done = RefreshedAll::default();
        for lock in states {
            let mut state = lock.lock().await;
            let Some(repo) = state.repo.clone() else {
                continue;
            };
            let path = self.path(&repo);
            if !tokio::fs::try_exists(path.join("HEAD"))
                .await
                .unwrap_or(false)
            {
                continue;
            }
            match self.fetch(&mut state, &path, &repo, Instant::now()).await {
                Ok(()) => {
                    // The worker's own fetch: no organization's.
                    self.stats.fetched(&repo, None, path.clone());
                    done.refreshed += 1;
                }
                Err(e) => {
                    tracing::warn!(repo = %repo.cache_key, error = %e, "could not refresh a mirror");
                    done.failed.push((repo.cache_key.clone(), e));
                }
            }
        }
        done
    }

    /// Fetches an existing mirror and reads its tips again.
    async fn fetch(
        &self,
        state: &mut MirrorState,
        path: &Path,
        repo: &RepoUrl,
        started: Instant,
    ) -> Result<(), JobError> {
        let mut args: Vec<&str> = protocol_flags(repo).to_vec();
        args.extend(["fetch", "--prune", "--no-tags", "--quiet", "origin"]);
        // Whatever happens, the tips must be read again before they are trusted.
        state.tips = None;
        self.git
            .run(path, &args, Self::remote_options(repo))
            .await?;
        state.tips = Some(self.read_tips(path).await?);
        state.fetched_at = Some(started);
        state.checked_at.clear();
        Ok(())
    }

    /// Clones a new mirror (in a temporary directory, moved into place when whole).
    async fn create(
        &self,
        state: &mut MirrorState,
        path: &Path,
        repo: &RepoUrl,
        started: Instant,
    ) -> Result<(), JobError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| JobError::internal(format!("cannot create the mirror root: {e}")))?;
        let tmp = self
            .root
            .join(format!("{}.tmp-{}", repo.cache_key, ulid::Ulid::new()));
        let tmp_s = tmp.to_string_lossy().into_owned();
        let mut args: Vec<&str> = protocol_flags(repo).to_vec();
        args.extend([
            "clone",
            "--bare",
            "--no-tags",
            "--quiet",
            "--",
            &repo.url,
            &tmp_s,
        ]);
        let made = async {
            // Cloned into the (empty) new directory from inside it: jailed, the clone sees
            // that directory, not the worker's other mirrors.
            tokio::fs::create_dir(&tmp)
                .await
                .map_err(|e| JobError::internal(format!("cannot create {}: {e}", tmp.display())))?;
            self.git
                .run(&tmp, &args, Self::remote_options(repo))
                .await?;
            // Branches as they are on the remote, refreshed by every fetch. (Not `clone
            // --config`: a bare clone adds that refspec to its own and refuses the double.)
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
            let tips = self.read_tips(&tmp).await?;
            tokio::fs::rename(&tmp, path).await.map_err(|e| {
                JobError::internal(format!("cannot move the new mirror in place: {e}"))
            })?;
            Ok::<_, JobError>(tips)
        }
        .await;
        match made {
            Ok(tips) => {
                state.tips = Some(tips);
                state.fetched_at = Some(started);
                state.checked_at.clear();
                Ok(())
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                Err(e)
            }
        }
    }

    /// The mirror's branches and the commits they are at.
    async fn read_tips(&self, mirror: &Path) -> Result<HashMap<String, String>, JobError> {
        let out = self
            .git
            .run(
                mirror,
                &[
                    "for-each-ref",
                    "--format=%(objectname) %(refname)",
                    "--",
                    "refs/heads/",
                ],
                RunOptions::default(),
            )
            .await?;
        Ok(out
            .stdout_str()
            .lines()
            .filter_map(|line| {
                let (sha, name) = line.split_once(' ')?;
                let branch = name.strip_prefix("refs/heads/")?;
                is_object_id(sha).then(|| (branch.to_string(), sha.to_string()))
            })
            .collect())
    }

    /// Where the remote has `branch` now (`None`: it has no such branch).
    async fn remote_tip(
        &self,
        mirror: &Path,
        repo: &RepoUrl,
        branch: &str,
    ) -> Result<Option<String>, JobError> {
        let reference = format!("refs/heads/{branch}");
        let mut args: Vec<&str> = protocol_flags(repo).to_vec();
        args.extend(["ls-remote", "--quiet", "origin", &reference]);
        let listed = self
            .git
            .run(mirror, &args, Self::remote_options(repo))
            .await?;
        // `ls-remote` matches patterns by path suffix: only the exact ref counts.
        Ok(listed.stdout_str().lines().find_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            (name == reference && is_object_id(sha)).then(|| sha.to_string())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_git_urls_use_protocol_v0() {
        let url = |u: &str| gitfleet_contract::rules::repo_url("repo_url", u, true).unwrap();
        assert_eq!(
            protocol_flags(&url("git://example.com/r.git")),
            &["-c", "protocol.version=0"]
        );
        assert!(protocol_flags(&url("https://example.com/r.git")).is_empty());
    }

    #[test]
    fn object_ids_are_hex_of_the_right_length() {
        assert!(is_object_id(&"a".repeat(40)));
        assert!(is_object_id(&"0".repeat(64)));
        assert!(!is_object_id(&"g".repeat(40)));
        assert!(!is_object_id("abc"));
    }
}
