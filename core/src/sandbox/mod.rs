//! Sandboxes: isolated working copies owned by one worker.
//!
//! Speed comes from never writing a full checkout twice: each worker keeps a bare mirror per
//! repository ([`mirror`]), a pool of warm empty sandbox directories, and a cache of released
//! working copies per repository ([`cache`]) that the next clone of that repository
//! recycles. A sandbox's id is `<worker id>.<ulid>`, so any producer can route follow-up ops
//! to `worker:<worker id>` without a lookup.

pub mod cache;
pub mod mirror;
mod provider;
mod template_stub;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use provider::{LocalProvider, SandboxProvider};

use crate::git::validate::RepoUrl;
use crate::git::{Git, GitOutput, RunOptions};
use crate::job::JobError;
use cache::{Cache, CachedCopy};
use mirror::{LOCAL, Mirrors};

/// How a worker keeps its sandboxes.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// `GITFLEET_SANDBOX_ROOT`: everything lives under it (mirrors, sandboxes, template).
    pub root: PathBuf,
    /// `GITFLEET_POOL_MIN` (default 2): warm empty sandboxes kept ready.
    pub pool_min: usize,
    /// `GITFLEET_POOL_MAX` (default 16): empty sandboxes kept at most.
    pub pool_max: usize,
    /// Released working copies kept per repository, at most (default 8).
    pub cache_per_repo: usize,
    /// Allow `file://` repositories (tests, the demo). Off by default.
    pub allow_file_protocol: bool,
}

impl SandboxConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            pool_min: 2,
            pool_max: 16,
            cache_per_repo: 8,
            allow_file_protocol: false,
        }
    }
}

/// One live sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    /// The sandbox's directory; the working tree is `work/` in it.
    pub dir: PathBuf,
    pub repo: RepoUrl,
    /// The branch it was cloned from.
    pub branch: String,
    /// `agent-{agent_id}-{task_id}`.
    pub agent_branch: String,
    /// A `--depth 1` clone: never recycled for another clone.
    pub shallow: bool,
    /// One op at a time per sandbox.
    busy: tokio::sync::Mutex<()>,
}

impl Sandbox {
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Waits for the sandbox to be free; ops hold the guard while they run.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.busy.lock().await
    }
}

/// What a clone produced.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub sandbox: Arc<Sandbox>,
    pub head_sha: String,
    pub cache_hit: bool,
}

/// What a clone asks for (already checked).
#[derive(Debug, Clone)]
pub struct CloneRequest {
    pub repo: RepoUrl,
    pub branch: String,
    pub agent_branch: String,
    pub shallow: bool,
    pub sparse_paths: Vec<String>,
}

/// What [`SandboxManager::health_check`] found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HealthReport {
    /// Sandboxes and released copies checked.
    pub checked: usize,
    /// Sandboxes skipped because an op was running in them.
    pub busy: usize,
    pub broken: Vec<BrokenSandbox>,
    /// Empty sandboxes in the pool after refilling it.
    pub pooled: usize,
    /// Why the pool could not be refilled, if it could not.
    pub pool_error: Option<String>,
}

/// A sandbox (or released copy) that failed its health check and was removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokenSandbox {
    pub sandbox_id: String,
    /// A released copy (its row is already `terminated`), not a live sandbox.
    pub cached: bool,
    /// What git said (redacted by the caller before it is stored).
    pub error: String,
}

/// The sandboxes of one worker.
pub struct SandboxManager {
    worker_id: String,
    git: Git,
    provider: Arc<dyn SandboxProvider>,
    mirrors: Mirrors,
    cache: Mutex<Cache>,
    pool: Mutex<Vec<PathBuf>>,
    live: Mutex<HashMap<String, Arc<Sandbox>>>,
    config: SandboxConfig,
}

impl std::fmt::Debug for SandboxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxManager")
            .field("worker_id", &self.worker_id)
            .field("root", &self.config.root)
            .finish()
    }
}

impl SandboxManager {
    /// Sets up the root (mirrors, sandboxes) and warms the pool.
    pub async fn new(
        worker_id: &str,
        git: Git,
        config: SandboxConfig,
    ) -> Result<Arc<Self>, JobError> {
        let sandboxes = config.root.join("sandboxes");
        let provider = Arc::new(LocalProvider::new(&sandboxes));
        let manager = Arc::new(Self {
            worker_id: worker_id.to_string(),
            mirrors: Mirrors::new(config.root.join("mirrors"), git.clone()),
            git,
            provider,
            cache: Mutex::new(Cache::default()),
            pool: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            config,
        });
        manager.refill_pool().await?;
        Ok(manager)
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    /// Runs git in a sandbox's working tree.
    pub async fn git_in(
        &self,
        sandbox: &Sandbox,
        args: &[&str],
        options: RunOptions,
    ) -> Result<GitOutput, JobError> {
        self.git.run(&sandbox.work(), args, options).await
    }

    /// Runs git in a working tree against its local mirror (`origin`).
    async fn git_local(&self, work: &Path, args: &[&str]) -> Result<GitOutput, JobError> {
        let mut full: Vec<&str> = LOCAL.to_vec();
        full.extend_from_slice(args);
        self.git.run(work, &full, RunOptions::default()).await
    }

    /// Fetches the latest of the sandbox's repository, `branch` at least as new as now, into
    /// its working copy (through the mirror): the remote is read once, however many
    /// sandboxes wait for it.
    pub async fn fetch(&self, sandbox: &Sandbox, branch: &str) -> Result<(), JobError> {
        self.mirrors.refresh(&sandbox.repo, branch).await?;
        self.git_local(
            &sandbox.work(),
            &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
        )
        .await?;
        Ok(())
    }

    /// The sandbox `id`, if this worker has it.
    pub fn get(&self, id: &str) -> Result<Arc<Sandbox>, JobError> {
        self.live
            .lock()
            .expect("not poisoned")
            .get(id)
            .cloned()
            .ok_or_else(|| {
                JobError::sandbox_not_found(format!(
                    "sandbox {id} is not on worker {} (released, or never made)",
                    self.worker_id
                ))
            })
    }

    pub fn pooled_count(&self) -> usize {
        self.pool.lock().expect("not poisoned").len()
    }

    /// Makes a sandbox holding `req.repo` at `req.branch`, on a new branch
    /// `req.agent_branch`: from a released copy of the repository when there is one,
    /// otherwise cloned from the mirror into a warm empty sandbox.
    pub async fn clone_repo(&self, req: &CloneRequest) -> Result<Cloned, JobError> {
        let (mirror, branch_seen) = self.mirrors.refresh(&req.repo, &req.branch).await?;
        let start_ref = format!("refs/heads/{}", req.branch);
        let exists = branch_seen
            || self
                .git
                .run(
                    &mirror,
                    &[
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        "--end-of-options",
                        &start_ref,
                    ],
                    RunOptions {
                        allow_failure: true,
                        ..Default::default()
                    },
                )
                .await?
                .status
                == 0;
        if !exists {
            return Err(JobError::invalid_input(format!(
                "branch: the repository has no branch {:?}",
                req.branch
            )));
        }
        let key = req.repo.cache_key.clone();
        let recycled = {
            let mut cache = self.cache.lock().expect("not poisoned");
            cache.record_use(&key, Instant::now());
            if req.shallow { None } else { cache.take(&key) }
        };
        let cache_hit = recycled.is_some();
        let dir = match recycled {
            Some(copy) => copy.dir,
            None => self.take_empty().await?,
        };
        let work = dir.join("work");
        let prepared = if cache_hit {
            self.recycle(&work, req).await
        } else {
            self.fresh(&mirror, &work, req).await
        };
        if let Err(e) = prepared {
            let _ = self.provider.destroy(&dir).await;
            return Err(e);
        }
        let head = self
            .git
            .run(&work, &["rev-parse", "HEAD"], RunOptions::default())
            .await?;
        let sandbox = Arc::new(Sandbox {
            id: format!("{}.{}", self.worker_id, ulid::Ulid::new()),
            dir,
            repo: req.repo.clone(),
            branch: req.branch.clone(),
            agent_branch: req.agent_branch.clone(),
            shallow: req.shallow,
            busy: tokio::sync::Mutex::new(()),
        });
        self.live
            .lock()
            .expect("not poisoned")
            .insert(sandbox.id.clone(), sandbox.clone());
        Ok(Cloned {
            sandbox,
            head_sha: head.stdout_str().trim().to_string(),
            cache_hit,
        })
    }

    async fn fresh(&self, mirror: &Path, work: &Path, req: &CloneRequest) -> Result<(), JobError> {
        let parent = work.parent().expect("work is inside a sandbox");
        let work_s = work.to_string_lossy().into_owned();
        let mirror_s = mirror.to_string_lossy().into_owned();
        if req.shallow {
            let url = format!("file://{mirror_s}");
            self.git_local(
                parent,
                &[
                    "clone",
                    "--depth",
                    "1",
                    "--no-checkout",
                    "--quiet",
                    "--branch",
                    &req.branch,
                    "--",
                    &url,
                    &work_s,
                ],
            )
            .await?;
        } else {
            self.git_local(
                parent,
                &[
                    "clone",
                    "--shared",
                    "--no-checkout",
                    "--quiet",
                    "--",
                    &mirror_s,
                    &work_s,
                ],
            )
            .await?;
        }
        // Fetches read the mirror; pushes go to the real remote.
        self.git
            .run(
                work,
                &["remote", "set-url", "--push", "origin", &req.repo.url],
                RunOptions::default(),
            )
            .await?;
        self.checkout(work, req, false).await
    }

    async fn recycle(&self, work: &Path, req: &CloneRequest) -> Result<(), JobError> {
        self.git_local(
            work,
            &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
        )
        .await?;
        self.checkout(work, req, true).await
    }

    /// Checks out the agent branch; on a recycled copy also undoes an earlier sparse
    /// checkout and removes whatever the previous agent left.
    async fn checkout(
        &self,
        work: &Path,
        req: &CloneRequest,
        recycled: bool,
    ) -> Result<(), JobError> {
        let was_sparse = recycled
            && tokio::fs::try_exists(work.join(".git/info/sparse-checkout"))
                .await
                .unwrap_or(false);
        if req.sparse_paths.is_empty() {
            if was_sparse {
                self.git
                    .run(work, &["sparse-checkout", "disable"], RunOptions::default())
                    .await?;
            }
        } else {
            let mut args = vec!["sparse-checkout", "set", "--no-cone", "--"];
            let patterns: Vec<String> = req.sparse_paths.iter().map(|p| format!("/{p}")).collect();
            args.extend(patterns.iter().map(String::as_str));
            self.git.run(work, &args, RunOptions::default()).await?;
        }
        let upstream = format!("origin/{}", req.branch);
        self.git
            .run(
                work,
                &[
                    "checkout",
                    "--quiet",
                    "-f",
                    "-B",
                    &req.agent_branch,
                    &upstream,
                    "--",
                ],
                RunOptions::default(),
            )
            .await?;
        if recycled {
            self.git
                .run(work, &["clean", "-ffdxq"], RunOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Gives a sandbox up. Its working copy is kept for the next clone of the same
    /// repository when it is healthy, full (not shallow) and there is room; otherwise it is
    /// removed. Returns whether it was kept.
    pub async fn release(&self, id: &str) -> Result<bool, JobError> {
        let sandbox = self
            .live
            .lock()
            .expect("not poisoned")
            .remove(id)
            .ok_or_else(|| {
                JobError::sandbox_not_found(format!("sandbox {id} is not on this worker"))
            })?;
        // Wait for an op still running on it.
        let _busy = sandbox.lock().await;
        let healthy = self
            .git
            .run(
                &sandbox.work(),
                &["rev-parse", "--is-inside-work-tree"],
                RunOptions {
                    allow_failure: true,
                    timeout: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
            )
            .await
            .map(|o| o.status == 0)
            .unwrap_or(false);
        let key = &sandbox.repo.cache_key;
        // A shallow copy lacks history a full clone would need: it is not kept.
        let keep = healthy && !sandbox.shallow && {
            let mut cache = self.cache.lock().expect("not poisoned");
            let room = cache.count(key) < self.config.cache_per_repo;
            if room {
                cache.put(
                    key,
                    CachedCopy {
                        dir: sandbox.dir.clone(),
                        sandbox_id: Some(sandbox.id.clone()),
                        released_at: Instant::now(),
                    },
                );
            }
            room
        };
        if !keep {
            if !healthy {
                tracing::warn!(sandbox = %sandbox.id, "released sandbox failed its health check; removed");
            }
            self.provider.destroy(&sandbox.dir).await?;
        }
        Ok(keep)
    }

    /// Evicts released copies by their tiers at `now`; returns how many were removed.
    pub async fn evict(&self, now: Instant) -> usize {
        let gone = self.cache.lock().expect("not poisoned").evict(now);
        for copy in &gone {
            if let Err(e) = self.provider.destroy(&copy.dir).await {
                tracing::warn!(error = %e, "could not remove an evicted copy");
            }
        }
        gone.len()
    }

    /// Evicts the released copies that were the sandboxes `ids` (the scheduler's eviction,
    /// which tiers copies by the fleet's use of their repositories). Returns the ids whose
    /// copies were removed; an id this worker no longer keeps (recycled by a clone since,
    /// or never here) is left out, not an error.
    pub async fn evict_ids(&self, ids: &[String]) -> Vec<String> {
        let gone = self.cache.lock().expect("not poisoned").remove_ids(ids);
        let mut removed = Vec::with_capacity(gone.len());
        for copy in gone {
            if let Err(e) = self.provider.destroy(&copy.dir).await {
                tracing::warn!(error = %e, "could not remove an evicted copy");
            }
            removed.extend(copy.sandbox_id);
        }
        removed
    }

    /// Checks every sandbox and released copy of this worker (`git rev-parse
    /// --is-inside-work-tree` in its working tree). A broken one is removed (a live
    /// sandbox stops existing: its next op is `sandbox_not_found`); then the pool is topped
    /// up. A sandbox busy with an op is not disturbed: an op is running in it.
    pub async fn health_check(&self) -> HealthReport {
        let live: Vec<Arc<Sandbox>> = self
            .live
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        let mut report = HealthReport::default();
        for sandbox in live {
            let Ok(_busy) = sandbox.busy.try_lock() else {
                report.busy += 1;
                continue;
            };
            report.checked += 1;
            if let Err(error) = self.check_work_tree(&sandbox.work()).await {
                self.live.lock().expect("not poisoned").remove(&sandbox.id);
                if let Err(e) = self.provider.destroy(&sandbox.dir).await {
                    tracing::warn!(error = %e, "could not remove a broken sandbox");
                }
                tracing::warn!(sandbox = %sandbox.id, %error, "sandbox failed its health check; terminated");
                report.broken.push(BrokenSandbox {
                    sandbox_id: sandbox.id.clone(),
                    cached: false,
                    error,
                });
            }
        }
        let copies: Vec<CachedCopy> = self
            .cache
            .lock()
            .expect("not poisoned")
            .copies()
            .cloned()
            .collect();
        for copy in copies {
            report.checked += 1;
            if let Err(error) = self.check_work_tree(&copy.dir.join("work")).await {
                let dir = copy.dir.clone();
                let gone = self
                    .cache
                    .lock()
                    .expect("not poisoned")
                    .remove_where(|c| c.dir == dir);
                for g in gone {
                    let _ = self.provider.destroy(&g.dir).await;
                }
                tracing::warn!(sandbox = ?copy.sandbox_id, %error, "released copy failed its health check; removed");
                report.broken.push(BrokenSandbox {
                    sandbox_id: copy.sandbox_id.unwrap_or_default(),
                    cached: true,
                    error,
                });
            }
        }
        if let Err(e) = self.refill_pool().await {
            report.pool_error = Some(e.to_string());
        }
        report.pooled = self.pooled_count();
        report
    }

    /// Whether `work` is a working tree git can read; the reason when it is not.
    async fn check_work_tree(&self, work: &Path) -> Result<(), String> {
        let out = self
            .git
            .run(
                work,
                &["rev-parse", "--is-inside-work-tree"],
                RunOptions {
                    allow_failure: true,
                    timeout: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if out.status == 0 && out.stdout_str().trim() == "true" {
            Ok(())
        } else {
            let why = out.stderr.trim().to_string();
            Err(if why.is_empty() {
                format!("git rev-parse exited with {}", out.status)
            } else {
                why
            })
        }
    }

    /// Recomputes the most used repositories (never evicted).
    pub fn recompute_top(&self) {
        self.cache.lock().expect("not poisoned").recompute_top();
    }

    /// Removes every sandbox, copy and mirror of this worker (it is leaving: its sandboxes
    /// go with it).
    pub async fn remove_all(&self) {
        self.live.lock().expect("not poisoned").clear();
        if let Err(e) = tokio::fs::remove_dir_all(&self.config.root).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, root = %self.config.root.display(), "could not remove the sandbox root");
        }
    }

    /// Tops the pool of empty sandboxes up to its minimum.
    pub async fn refill_pool(&self) -> Result<(), JobError> {
        loop {
            if self.pooled_count() >= self.config.pool_min {
                return Ok(());
            }
            let dir = self
                .provider
                .create(&format!("sb-{}", ulid::Ulid::new()))
                .await?;
            self.pool.lock().expect("not poisoned").push(dir);
        }
    }

    async fn take_empty(&self) -> Result<PathBuf, JobError> {
        let pooled = self.pool.lock().expect("not poisoned").pop();
        match pooled {
            Some(dir) => Ok(dir),
            None => {
                self.provider
                    .create(&format!("sb-{}", ulid::Ulid::new()))
                    .await
            }
        }
    }

    /// The local maintenance loop: refill the pool and, with `local_eviction`, evict by
    /// tier and recompute the top repositories from this worker's own use. A worker that
    /// keeps the record leaves eviction to the scheduler (`local_eviction` false), which
    /// tiers copies by the whole fleet's use and sends `maintain` jobs.
    pub async fn maintain(
        self: Arc<Self>,
        every: Duration,
        local_eviction: bool,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if local_eviction {
                if rounds.is_multiple_of(5) {
                    self.recompute_top();
                }
                rounds += 1;
                let evicted = self.evict(Instant::now()).await;
                if evicted > 0 {
                    tracing::info!(evicted, "evicted released working copies");
                }
            }
            if let Err(e) = self.refill_pool().await {
                tracing::warn!(error = %e, "could not refill the sandbox pool");
            }
        }
    }
}
