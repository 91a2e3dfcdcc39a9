//! Sandboxes: isolated working copies owned by one worker.
//!
//! Speed comes from never writing a full checkout twice: each worker keeps a bare mirror per
//! repository ([`mirror`]), a pool of warm empty sandbox directories, and a cache of released
//! working copies per repository ([`cache`]) that the next clone of that repository
//! recycles. Every sandbox is made from the worker's current [`template`] (its git config,
//! no hooks). A sandbox's id is `<worker id>.<ulid>`, so any producer can route follow-up
//! ops to `worker:<worker id>` without a lookup.

pub mod cache;
mod clone;
mod limits;
pub mod mirror;
mod provider;
mod release;
pub(crate) mod replay;
mod settings;
pub mod stats;
pub mod template;
mod upkeep;
mod working_copy;
pub(crate) mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use clone::{CloneRequest, Cloned};
pub use gitfleet_contract::ops::maintain::{BrokenSandbox, HealthReport};
pub use limits::{SandboxLimits, Usage};
pub use provider::{LocalProvider, SandboxProvider};
pub use settings::GitSettings;
pub use upkeep::TemplateRebuild;
pub use working_copy::Sandbox;

use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;

use crate::git::{Git, GitOutput, RunOptions, Sees};
use cache::Cache;
use mirror::{LOCAL, Mirrors};
use stats::RepoStats;
use template::Templates;
use working_copy::READ_ONLY;

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
    /// What one sandbox may hold ([`SandboxLimits`]).
    pub limits: SandboxLimits,
}

impl SandboxConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            pool_min: 2,
            pool_max: 16,
            cache_per_repo: 8,
            allow_file_protocol: false,
            limits: SandboxLimits::default(),
        }
    }
}

/// The sandboxes of one worker.
pub struct SandboxManager {
    worker_id: String,
    git: Git,
    provider: Arc<dyn SandboxProvider>,
    mirrors: Mirrors,
    templates: Templates,
    cache: Mutex<Cache>,
    pool: Mutex<Vec<PathBuf>>,
    live: Mutex<HashMap<String, Arc<Sandbox>>>,
    /// Tree sizes already listed (see [`limits`]).
    sizes: Mutex<limits::TreeSizes>,
    /// What was done with each repository since the last flush ([`stats`]).
    stats: Arc<RepoStats>,
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
    /// Sets up the root (template, mirrors, sandboxes) and warms the pool.
    pub async fn new(
        worker_id: &str,
        git: Git,
        config: SandboxConfig,
    ) -> Result<Arc<Self>, JobError> {
        let sandboxes = config.root.join("sandboxes");
        let provider = Arc::new(LocalProvider::new(&sandboxes));
        let stats = Arc::new(RepoStats::new(git.redactor().clone()));
        let manager = Arc::new(Self {
            worker_id: worker_id.to_string(),
            mirrors: Mirrors::new(config.root.join("mirrors"), git.clone(), stats.clone()),
            stats,
            templates: Templates::open(config.root.join("template")).await?,
            git,
            provider,
            cache: Mutex::new(Cache::default()),
            pool: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            sizes: Mutex::default(),
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

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The per-repository counters ([`stats`]).
    pub fn stats(&self) -> &RepoStats {
        &self.stats
    }

    /// Runs git in a sandbox's working tree (jailed, it sees the sandbox, the mirror it
    /// borrows from, read-only, and what `options.sees` adds). Anything but a read-only
    /// command makes the sandbox's tree unknown (before it runs: it may fail half-way).
    pub async fn git_in(
        &self,
        sandbox: &Sandbox,
        args: &[&str],
        options: RunOptions,
    ) -> Result<GitOutput, JobError> {
        if !args.first().is_some_and(|sub| READ_ONLY.contains(sub)) {
            sandbox.tree_unknown();
        }
        self.git_copy(&sandbox.work(), &sandbox.repo, args, options)
            .await
    }

    /// What git in a working copy of `repo` sees beside the copy itself when jailed: the
    /// repository's mirror, read-only. A full copy borrows its objects
    /// (`.git/objects/info/alternates` points into it); a shallow one fetches from it.
    pub(crate) fn borrowed(&self, repo: &RepoUrl) -> Sees {
        Sees::default().and_read_only(self.mirrors.path(repo))
    }

    /// Runs git in `work`, a working copy of `repo` that is not (or not yet) a live
    /// sandbox: a clone being made, a copy being released or checked.
    async fn git_copy(
        &self,
        work: &Path,
        repo: &RepoUrl,
        args: &[&str],
        mut options: RunOptions,
    ) -> Result<GitOutput, JobError> {
        options.sees = self.borrowed(repo).and(options.sees);
        self.git.run(work, args, options).await
    }

    /// Runs git in `cwd`, inside a sandbox of `repo`, against the repository's mirror
    /// (`origin`, a local path), seeing what `sees` adds.
    async fn git_local(
        &self,
        cwd: &Path,
        repo: &RepoUrl,
        args: &[&str],
        sees: Sees,
    ) -> Result<GitOutput, JobError> {
        let mut full: Vec<&str> = LOCAL.to_vec();
        full.extend_from_slice(args);
        let options = RunOptions {
            sees,
            ..RunOptions::default()
        };
        self.git_copy(cwd, repo, &full, options).await
    }

    /// The id of a sandbox about to be made: `<worker id>.<ulid>`.
    pub fn new_sandbox_id(&self) -> String {
        format!("{}.{}", self.worker_id, ulid::Ulid::new())
    }

    /// The sandbox `id`, if this worker has it and it belongs to `org`. A sandbox of another
    /// organization is answered exactly as one that does not exist (the same error, after
    /// the same one map lookup): no job can learn that another organization's sandbox is
    /// there.
    pub fn get(&self, id: &str, org: Option<&str>) -> Result<Arc<Sandbox>, JobError> {
        self.live
            .lock()
            .expect("not poisoned")
            .get(id)
            .filter(|s| s.org.as_deref() == org)
            .cloned()
            .ok_or_else(|| self.not_found(id))
    }

    /// The one answer for a sandbox a job cannot have: released, never made, or another
    /// organization's.
    pub(crate) fn not_found(&self, id: &str) -> JobError {
        JobError::sandbox_not_found(format!(
            "sandbox {id} is not on worker {} (released, or never made)",
            self.worker_id
        ))
    }

    pub fn pooled_count(&self) -> usize {
        self.pool.lock().expect("not poisoned").len()
    }
}
