//! Making a sandbox for a clone: from the repository's mirror (fetched once per repository,
//! others wait on it), into a warm empty sandbox from the pool or a released copy of the same
//! repository recycled from the cache.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;

use super::limits::{Usage, own_object_bytes};
use super::template::Template;
use super::working_copy::TreeState;
use super::{Sandbox, SandboxManager};
use crate::git::{RunOptions, Sees, in_phase};
use gitfleet_contract::steps::StepPhase;
use gitfleet_store::SandboxSource;

/// What a clone produced.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub sandbox: Arc<Sandbox>,
    pub head_sha: String,
    pub cache_hit: bool,
    /// How the sandbox was made.
    pub source: SandboxSource,
}

/// What a clone asks for (already checked).
#[derive(Debug, Clone)]
pub struct CloneRequest {
    /// The id the sandbox gets (claimed in the registry first); `None`: a new one.
    pub sandbox_id: Option<String>,
    /// Who it is for: the job's organization (its envelope's) and agent.
    pub org: Option<String>,
    pub agent_id: String,
    pub repo: RepoUrl,
    pub branch: String,
    pub agent_branch: String,
    pub shallow: bool,
    pub sparse_paths: Vec<String>,
}

impl SandboxManager {
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
                &sandbox.repo,
                &["fetch", "--prune", "--no-tags", "--quiet", "origin"],
                Sees::default(),
            )
            .await?;
            return Ok(());
        }
        self.set_tracking(
            &sandbox.work(),
            &sandbox.repo,
            branch,
            refreshed.tip.as_deref(),
        )
        .await
    }

    /// Points `refs/remotes/origin/<branch>` of a full working copy at `tip` (or deletes it).
    /// No fetch is needed: a full copy borrows the mirror's objects (`clone --shared`), so
    /// every commit of the mirror is already readable in it. One small git process where a
    /// fetch from the mirror is two (fetch and upload-pack) and a ref negotiation.
    async fn set_tracking(
        &self,
        work: &Path,
        repo: &RepoUrl,
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
        self.git_copy(work, repo, &args, RunOptions::default())
            .await?;
        Ok(())
    }

    /// Makes a sandbox holding `req.repo` at `req.branch`, on a new branch
    /// `req.agent_branch`: from a released copy of the repository when there is one,
    /// otherwise cloned from the mirror into a warm empty sandbox, made from the current
    /// template.
    ///
    /// Within a recorded run, its git calls are the run's steps in phase `sandbox` (the
    /// mirror's own, `mirror`).
    pub async fn clone_repo(&self, req: &CloneRequest) -> Result<Cloned, JobError> {
        in_phase(StepPhase::Sandbox, self.clone_now(req)).await
    }

    async fn clone_now(&self, req: &CloneRequest) -> Result<Cloned, JobError> {
        let refreshed = self.mirrors.refresh(&req.repo, &req.branch).await?;
        let Some(tip) = refreshed.tip else {
            return Err(JobError::invalid_input(format!(
                "branch: the repository has no branch {:?}",
                req.branch
            )));
        };
        // Before any sandbox directory is taken: what the checkout would write.
        let what = format!("repo_url: branch {:?} would check out", req.branch);
        let usage = self
            .check_checkout(&what, &refreshed.path, &req.repo, &tip, &req.sparse_paths)
            .await?;
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
        let (dir, source) = match recycled {
            Some(copy) => (copy.dir, SandboxSource::Cache),
            None => {
                let (dir, pooled) = self.take_empty().await?;
                let source = match (refreshed.created, pooled) {
                    (true, _) => SandboxSource::Cold,
                    (false, true) => SandboxSource::Pool,
                    (false, false) => SandboxSource::Template,
                };
                (dir, source)
            }
        };
        let work = dir.join("work");
        let prepared = if cache_hit {
            self.recycle(&work, req, &tip).await.map(|()| (tip, usage))
        } else {
            self.fresh(&refreshed.path, &template, &work, req, (&tip, &what, usage))
                .await
        };
        let (head_sha, usage) = match prepared {
            Ok(head) => head,
            Err(e) => {
                let _ = self.provider.destroy(&dir).await;
                return Err(e);
            }
        };
        let sandbox = Arc::new(Sandbox {
            id: req
                .sandbox_id
                .clone()
                .unwrap_or_else(|| self.new_sandbox_id()),
            org: req.org.clone(),
            agent_id: req.agent_id.clone(),
            dir,
            repo: req.repo.clone(),
            branch: req.branch.clone(),
            agent_branch: req.agent_branch.clone(),
            shallow: req.shallow,
            sparse_paths: req.sparse_paths.clone(),
            usage: Mutex::new(usage),
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
        self.stats.made(&req.repo, source, refreshed.path.clone());
        Ok(Cloned {
            sandbox,
            head_sha,
            cache_hit,
            source,
        })
    }

    /// Clones from the mirror into an empty sandbox, with the template, and checks out
    /// `tip` (already checked against the limits as `what`: it holds `usage`); returns
    /// HEAD and what the sandbox holds.
    async fn fresh(
        &self,
        mirror: &Path,
        template: &Template,
        work: &Path,
        req: &CloneRequest,
        (tip, what, usage): (&str, &str, Usage),
    ) -> Result<(String, Usage), JobError> {
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
        // Jailed, the clone sees the sandbox, the mirror and the template (read-only).
        let template_dir = Sees::default().and_read_only(template.git_dir());
        self.git_local(parent, &req.repo, &args, template_dir)
            .await?;
        if !req.shallow {
            // The mirror may have moved on since the refresh: check out the tip that was
            // checked, not whatever the mirror holds now.
            self.set_tracking(work, &req.repo, &req.branch, Some(tip))
                .await?;
            self.checkout(work, req, false).await?;
            return Ok((tip.to_string(), usage));
        }
        // A shallow copy has objects of its own (counted), and the commit it fetched may
        // be newer than the tip that was checked.
        let head = self
            .git_copy(
                work,
                &req.repo,
                &["rev-parse", "HEAD"],
                RunOptions::default(),
            )
            .await?;
        let head = head.stdout_str().trim().to_string();
        let mut usage = self
            .check_checkout(what, work, &req.repo, &head, &req.sparse_paths)
            .await?;
        usage.object_bytes = own_object_bytes(work.join(".git/objects")).await;
        self.limits().check(what, usage)?;
        self.checkout(work, req, false).await?;
        Ok((head, usage))
    }

    /// Moves a released copy (left clean by [`SandboxManager::release`]) to `tip`. No fetch:
    /// the copy borrows the mirror's objects, so pointing its remote-tracking branch at the
    /// mirror's tip is enough.
    async fn recycle(&self, work: &Path, req: &CloneRequest, tip: &str) -> Result<(), JobError> {
        self.set_tracking(work, &req.repo, &req.branch, Some(tip))
            .await?;
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
                self.git_copy(
                    work,
                    &req.repo,
                    &["sparse-checkout", "disable"],
                    RunOptions::default(),
                )
                .await?;
            }
        } else {
            let mut args = vec!["sparse-checkout", "set", "--no-cone", "--"];
            let patterns: Vec<String> = req.sparse_paths.iter().map(|p| format!("/{p}")).collect();
            args.extend(patterns.iter().map(String::as_str));
            self.git_copy(work, &req.repo, &args, RunOptions::default())
                .await?;
        }
        let upstream = format!("origin/{}", req.branch);
        self.git_copy(
            work,
            &req.repo,
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
}
