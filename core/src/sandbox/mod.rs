//! Sandboxes: isolated working copies owned by one worker.
//!
//! Speed comes from never writing a full checkout twice: each worker keeps a bare mirror per
//! repository ([`mirror`]), a pool of warm empty sandbox directories, and a cache of released
//! working copies per repository ([`cache`]) that the next clone of that repository
//! recycles. Every sandbox is made from the worker's current [`template`] (its git config,
//! no hooks). A sandbox's id is `<worker id>.<ulid>`, so any producer can route follow-up
//! ops to `worker:<worker id>` without a lookup.

pub mod cache;
pub mod mirror;
mod provider;
mod settings;
pub mod template;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use gitfleet_contract::ops::maintain::{BrokenSandbox, HealthReport};
pub use provider::{LocalProvider, SandboxProvider};
pub use settings::GitSettings;

use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;

use crate::git::{Git, GitOutput, RunOptions};
use cache::{Cache, CachedCopy};
use mirror::{LOCAL, Mirrors};
use template::{Template, Templates};

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
    /// The template version it was made from (held: kept on disk while the sandbox lives).
    template: Arc<Template>,
    /// What this worker knows of the working tree (see [`TreeState`]).
    tree: Mutex<TreeState>,
    /// One op at a time per sandbox.
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// What the worker knows of a sandbox's working tree. Only this worker writes it: files
/// through `write_files`, everything else through git run by an op ([`SandboxManager::git_in`]),
/// so it can tell `status` where to look instead of letting git `lstat` every file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TreeState {
    /// Anything may differ from HEAD (git ran something that may have changed the index or
    /// the tree): `status` looks at everything.
    Unknown,
    /// The index is HEAD, nothing is unmerged, and the working tree is the index (ignored
    /// files aside) except perhaps at these paths, written or deleted since.
    Clean { touched: BTreeSet<String> },
}

/// Most touched paths a scoped `status` takes; beyond, it looks at everything.
const MAX_SCOPED_PATHS: usize = 256;

/// Git commands that change neither the index's content nor the working tree (`status` and
/// `diff` may rewrite the index's cached stat data, which changes nothing they report).
const READ_ONLY: &[&str] = &[
    "status",
    "diff",
    "log",
    "show",
    "rev-parse",
    "rev-list",
    "ls-files",
    "cat-file",
    "for-each-ref",
    "merge-base",
];

impl Sandbox {
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The working copy's own object store (besides the mirror, its alternate).
    pub fn objects(&self) -> PathBuf {
        self.work().join(".git").join("objects")
    }

    /// The id of the template version the sandbox was made from.
    pub fn template_id(&self) -> &str {
        self.template.id()
    }

    /// Records paths written or deleted in the working tree (call before writing). A
    /// `.gitignore` or `.gitattributes` can change how every other file is seen, so writing
    /// one makes the tree unknown.
    pub fn touched<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        let mut tree = self.tree.lock().expect("not poisoned");
        if let TreeState::Clean { touched } = &mut *tree {
            for path in paths {
                let name = path.rsplit('/').next().unwrap_or(path);
                if name == ".gitignore" || name == ".gitattributes" {
                    *tree = TreeState::Unknown;
                    return;
                }
                touched.insert(path.to_string());
            }
            if touched.len() > MAX_SCOPED_PATHS {
                *tree = TreeState::Unknown;
            }
        }
    }

    /// Forgets what is known of the working tree (something may have changed it).
    pub fn tree_unknown(&self) {
        *self.tree.lock().expect("not poisoned") = TreeState::Unknown;
    }

    /// Records that the tree is exactly HEAD (a full `status` found nothing).
    pub fn tree_clean(&self) {
        *self.tree.lock().expect("not poisoned") = TreeState::Clean {
            touched: BTreeSet::new(),
        };
    }

    /// The only paths at which the working tree or index may differ from HEAD, if that is
    /// known (`None`: it is not, look everywhere).
    pub fn status_scope(&self) -> Option<Vec<String>> {
        match &*self.tree.lock().expect("not poisoned") {
            TreeState::Unknown => None,
            TreeState::Clean { touched } => Some(touched.iter().cloned().collect()),
        }
    }

    /// Waits for the sandbox to be free; ops hold the guard while they run.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.busy.lock().await
    }

    /// [`Self::lock`], as a guard that can outlive the borrow (work an op finishes in the
    /// background, after its job has answered).
    pub async fn lock_owned(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.busy.clone().lock_owned().await
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

/// What [`SandboxManager::rebuild_template`] did.
#[derive(Debug, Clone)]
pub struct TemplateRebuild {
    /// The new current version.
    pub template_id: String,
    /// Released copies made from older versions, removed (the next clone of their
    /// repository starts from the new template).
    pub copies_removed: usize,
    /// Older versions removed now; those still held by live sandboxes go once they are.
    pub versions_removed: usize,
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
    config: SandboxConfig,
    push_groups: crate::ops::PushGroups,
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
        let manager = Arc::new(Self {
            worker_id: worker_id.to_string(),
            mirrors: Mirrors::new(config.root.join("mirrors"), git.clone()),
            templates: Templates::open(config.root.join("template")).await?,
            git,
            provider,
            cache: Mutex::new(Cache::default()),
            pool: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            config,
            push_groups: Default::default(),
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

    /// The weekly rebuild: a new template version becomes current (new sandboxes are made
    /// from it), released copies made from older versions are removed (nothing uses them),
    /// and older versions go as soon as no live sandbox holds them. Sandboxes in use keep
    /// working as they are; a copy made from an older version is not kept when released.
    pub async fn rebuild_template(&self) -> Result<TemplateRebuild, JobError> {
        let new = self.templates.rebuild().await?;
        let stale = self
            .cache
            .lock()
            .expect("not poisoned")
            .remove_where(|copy| copy.template.id() != new.id());
        for copy in &stale {
            if let Err(e) = self.provider.destroy(&copy.dir).await {
                tracing::warn!(error = %e, "could not remove a copy made from an old template");
            }
        }
        let copies_removed = stale.len();
        // The copies held their versions: let go before pruning.
        drop(stale);
        let versions_removed = self.templates.prune().await;
        Ok(TemplateRebuild {
            template_id: new.id().to_string(),
            copies_removed,
            versions_removed,
        })
    }

    /// The pushes this worker is grouping, per `(repo, branch)`.
    pub(crate) fn push_groups(&self) -> &crate::ops::PushGroups {
        &self.push_groups
    }

    /// Runs git in a sandbox's working tree. Anything but a read-only command makes the
    /// sandbox's tree unknown (before it runs: it may fail half-way).
    pub async fn git_in(
        &self,
        sandbox: &Sandbox,
        args: &[&str],
        options: RunOptions,
    ) -> Result<GitOutput, JobError> {
        if !args.first().is_some_and(|sub| READ_ONLY.contains(sub)) {
            sandbox.tree_unknown();
        }
        self.git.run(&sandbox.work(), args, options).await
    }

    /// Runs git in a working tree against its local mirror (`origin`).
    async fn git_local(&self, work: &Path, args: &[&str]) -> Result<GitOutput, JobError> {
        let mut full: Vec<&str> = LOCAL.to_vec();
        full.extend_from_slice(args);
        self.git.run(work, &full, RunOptions::default()).await
    }

    /// Brings `origin/<branch>` in the sandbox's working copy to where the remote has
    /// `branch` now, or removes it if the remote has no such branch (through the mirror: the
    /// remote is read once, however many sandboxes wait for it). Other remote-tracking
    /// branches are left as they were.
    pub async fn fetch(&self, sandbox: &Sandbox, branch: &str) -> Result<(), JobError> {
        let refreshed = self.mirrors.refresh(&sandbox.repo, branch).await?;
        if sandbox.shallow {
            // A shallow copy has objects of its own, not the mirror's: a real fetch.
            self.git_local(
                &sandbox.work(),
                &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
            )
            .await?;
            return Ok(());
        }
        self.set_tracking(&sandbox.work(), branch, refreshed.tip.as_deref())
            .await
    }

    /// Points `refs/remotes/origin/<branch>` of a full working copy at `tip` (or deletes it).
    /// No fetch is needed: a full copy borrows the mirror's objects (`clone --shared`), so
    /// every commit of the mirror is already readable in it. One small git process where a
    /// fetch from the mirror is two (fetch and upload-pack) and a ref negotiation.
    async fn set_tracking(
        &self,
        work: &Path,
        branch: &str,
        tip: Option<&str>,
    ) -> Result<(), JobError> {
        let tracking = format!("refs/remotes/origin/{branch}");
        let args = match tip {
            Some(tip) => vec![
                "update-ref",
                "--no-deref",
                "--end-of-options",
                &tracking,
                tip,
            ],
            None => vec!["update-ref", "-d", "--end-of-options", &tracking],
        };
        self.git.run(work, &args, RunOptions::default()).await?;
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
    /// otherwise cloned from the mirror into a warm empty sandbox, made from the current
    /// template.
    pub async fn clone_repo(&self, req: &CloneRequest) -> Result<Cloned, JobError> {
        let refreshed = self.mirrors.refresh(&req.repo, &req.branch).await?;
        let Some(tip) = refreshed.tip else {
            return Err(JobError::invalid_input(format!(
                "branch: the repository has no branch {:?}",
                req.branch
            )));
        };
        let template = self.templates.current();
        let key = req.repo.cache_key.clone();
        let recycled = {
            let mut cache = self.cache.lock().expect("not poisoned");
            cache.record_use(&key, Instant::now());
            if req.shallow { None } else { cache.take(&key) }
        };
        // A copy made from an older template is not reused (a rebuild removes those, but
        // one released from a sandbox in use during the rebuild may still come back).
        let recycled = match recycled {
            Some(copy) if copy.template.id() != template.id() => {
                let _ = self.provider.destroy(&copy.dir).await;
                None
            }
            other => other,
        };
        let cache_hit = recycled.is_some();
        let dir = match recycled {
            Some(copy) => copy.dir,
            None => self.take_empty().await?,
        };
        let work = dir.join("work");
        let prepared = if cache_hit {
            self.recycle(&work, req, &tip).await.map(|()| tip)
        } else {
            self.fresh(&refreshed.path, &template, &work, req).await
        };
        let head_sha = match prepared {
            Ok(head) => head,
            Err(e) => {
                let _ = self.provider.destroy(&dir).await;
                return Err(e);
            }
        };
        let sandbox = Arc::new(Sandbox {
            id: format!("{}.{}", self.worker_id, ulid::Ulid::new()),
            dir,
            repo: req.repo.clone(),
            branch: req.branch.clone(),
            agent_branch: req.agent_branch.clone(),
            shallow: req.shallow,
            template,
            // Just checked out (`checkout -f`, on a fresh or cleaned copy).
            tree: Mutex::new(TreeState::Clean {
                touched: BTreeSet::new(),
            }),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        });
        self.live
            .lock()
            .expect("not poisoned")
            .insert(sandbox.id.clone(), sandbox.clone());
        Ok(Cloned {
            sandbox,
            head_sha,
            cache_hit,
        })
    }

    /// Clones from the mirror into an empty sandbox, with the template; returns HEAD.
    async fn fresh(
        &self,
        mirror: &Path,
        template: &Template,
        work: &Path,
        req: &CloneRequest,
    ) -> Result<String, JobError> {
        let parent = work.parent().expect("work is inside a sandbox");
        let work_s = work.to_string_lossy().into_owned();
        let mirror_s = mirror.to_string_lossy().into_owned();
        let template_arg = format!("--template={}", template.git_dir().to_string_lossy());
        // Fetches read the mirror; pushes go to the real remote.
        let push_url = format!("remote.origin.pushurl={}", req.repo.url);
        let url;
        let mut args = vec![
            "clone",
            &template_arg,
            "--no-checkout",
            "--quiet",
            "--config",
            &push_url,
        ];
        if req.shallow {
            url = format!("file://{mirror_s}");
            args.extend(["--depth", "1", "--branch", &req.branch, "--", &url, &work_s]);
        } else {
            args.extend(["--shared", "--", &mirror_s, &work_s]);
        }
        self.git_local(parent, &args).await?;
        self.checkout(work, req, false).await?;
        // The mirror may have moved on since the refresh: HEAD is what was checked out.
        let head = self
            .git
            .run(work, &["rev-parse", "HEAD"], RunOptions::default())
            .await?;
        Ok(head.stdout_str().trim().to_string())
    }

    /// Moves a released copy (left clean by [`SandboxManager::release`]) to `tip`. No fetch:
    /// the copy borrows the mirror's objects, so pointing its remote-tracking branch at the
    /// mirror's tip is enough.
    async fn recycle(&self, work: &Path, req: &CloneRequest, tip: &str) -> Result<(), JobError> {
        self.set_tracking(work, &req.branch, Some(tip)).await?;
        self.checkout(work, req, true).await
    }

    /// Checks out the agent branch (tracking `origin/<branch>`); on a recycled copy also
    /// undoes an earlier sparse checkout.
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
        Ok(())
    }

    /// Gives a sandbox up. Its working copy is kept for the next clone of the same
    /// repository when it is full (not shallow), made from the current template, there is
    /// room, and it can be cleaned: its index and tracked files reset to HEAD and every
    /// untracked or ignored file removed, so what the previous agent left is gone before
    /// the copy waits in the cache (the next clone only moves it to its branch). Otherwise
    /// it is removed. Returns whether it was kept.
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
        let key = &sandbox.repo.cache_key;
        // A shallow copy lacks history a full clone would need: it is not kept; nor is one
        // made from a template that is no longer current.
        let current_template = sandbox.template.id() == self.templates.current().id();
        let wanted = !sandbox.shallow
            && current_template
            && self.cache.lock().expect("not poisoned").count(key) < self.config.cache_per_repo;
        // Cleaning doubles as the health check: it fails on a broken repository.
        let clean = wanted && self.clean(&sandbox.work(), sandbox.status_scope()).await;
        let keep = clean && {
            let mut cache = self.cache.lock().expect("not poisoned");
            let room = cache.count(key) < self.config.cache_per_repo;
            if room {
                cache.put(
                    key,
                    CachedCopy {
                        dir: sandbox.dir.clone(),
                        sandbox_id: Some(sandbox.id.clone()),
                        released_at: Instant::now(),
                        template: sandbox.template.clone(),
                    },
                );
            }
            room
        };
        if !keep {
            if wanted && !clean {
                tracing::warn!(sandbox = %sandbox.id, "released sandbox failed its health check; removed");
            }
            self.provider.destroy(&sandbox.dir).await?;
        }
        if !current_template {
            // It may have been the last holder of an old template version.
            drop(_busy);
            drop(sandbox);
            self.templates.prune().await;
        }
        Ok(keep)
    }

    /// Leaves nothing of the previous agent but what `checkout -f` at the next clone
    /// undoes (changes to tracked files): `reset --hard` and `clean -ffdx`, or, where only
    /// `write_files` touched a tree otherwise at HEAD (`scope`), `clean -ffdx` under the
    /// top-level entries of those paths, or only a health check when there are none.
    /// Whether all of it succeeded.
    async fn clean(&self, work: &Path, scope: Option<Vec<String>>) -> bool {
        let options = || RunOptions {
            allow_failure: true,
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        // By top-level entry, so the directories `write_files` made go with their files.
        let tops: BTreeSet<&str> = scope
            .iter()
            .flatten()
            .map(|p| p.split('/').next().unwrap_or(p))
            .collect();
        let pathspecs: Vec<String> = tops.iter().map(|p| format!(":(literal){p}")).collect();
        let mut scoped = vec!["clean", "-ffdxq", "--"];
        scoped.extend(pathspecs.iter().map(String::as_str));
        let steps: Vec<&[&str]> = match &scope {
            None => vec![&["reset", "--hard", "--quiet"], &["clean", "-ffdxq"]],
            Some(paths) if paths.is_empty() => vec![&["rev-parse", "--is-inside-work-tree"]],
            Some(_) => vec![&scoped],
        };
        for args in steps {
            let ok = self
                .git
                .run(work, args, options())
                .await
                .map(|o| o.status == 0)
                .unwrap_or(false);
            if !ok {
                return false;
            }
        }
        true
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

    /// The local maintenance loop: refill the pool, remove template versions nothing holds
    /// any more and, with `local_eviction`, evict by tier and recompute the top
    /// repositories from this worker's own use. A worker that keeps the record leaves
    /// eviction to the scheduler (`local_eviction` false), which tiers copies by the whole
    /// fleet's use and sends `maintain` jobs.
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
            self.templates.prune().await;
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
