//! Keeping a worker's sandboxes healthy: eviction of released copies by tier, health
//! checks, the warm pool, the template rebuild, and removal of everything on the way out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfleet_contract::JobError;

use super::cache::CachedCopy;
use super::{BrokenSandbox, HealthReport, Sandbox, SandboxManager};
use crate::git::{RunOptions, Sees};

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

impl SandboxManager {
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
        // The copies held their versions: let go before pruning. The one prune counts every
        // version the rebuild freed (the previous one too, when nothing held it).
        drop(stale);
        let versions_removed = self.templates.prune().await;
        Ok(TemplateRebuild {
            template_id: new.id().to_string(),
            copies_removed,
            versions_removed,
        })
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
            let mirror = self.mirrors.path(&sandbox.repo);
            if let Err(error) = self.check_work_tree(&sandbox.work(), mirror).await {
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
        let copies: Vec<(String, CachedCopy)> = self
            .cache
            .lock()
            .expect("not poisoned")
            .copies()
            .map(|(key, copy)| (key.to_string(), copy.clone()))
            .collect();
        for (key, copy) in copies {
            report.checked += 1;
            let mirror = self.mirrors.path_of_key(&key);
            if let Err(error) = self.check_work_tree(&copy.dir.join("work"), mirror).await {
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

    /// Whether `work` is a working tree git can read; the reason when it is not. `mirror`
    /// is the mirror it borrows from.
    async fn check_work_tree(&self, work: &Path, mirror: PathBuf) -> Result<(), String> {
        let out = self
            .git
            .run(
                work,
                &["rev-parse", "--is-inside-work-tree"],
                RunOptions {
                    allow_failure: true,
                    timeout: Some(Duration::from_secs(10)),
                    sees: Sees::default().and_read_only(mirror),
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

    /// Removes every live sandbox of this worker (it has drained: its sandboxes' agents are
    /// answered `sandbox_not_found` from now on), each once no op is running in it. Its
    /// released copies, pool, mirrors and template stay, for when it takes jobs again.
    /// Returns how many it removed.
    pub async fn remove_live(&self) -> usize {
        let live: Vec<Arc<Sandbox>> = self
            .live
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, s)| s)
            .collect();
        for sandbox in &live {
            let _busy = sandbox.lock().await;
            if let Err(e) = self.provider.destroy(&sandbox.dir).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "could not remove a sandbox");
            }
        }
        let removed = live.len();
        drop(live);
        // They may have been the last holders of old template versions.
        self.templates.prune().await;
        removed
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

    /// An empty sandbox directory: a warm one of the pool (`true`), or, the pool being
    /// empty, one made now (`false`).
    pub(super) async fn take_empty(&self) -> Result<(PathBuf, bool), JobError> {
        let pooled = self.pool.lock().expect("not poisoned").pop();
        match pooled {
            Some(dir) => Ok((dir, true)),
            None => self
                .provider
                .create(&format!("sb-{}", ulid::Ulid::new()))
                .await
                .map(|dir| (dir, false)),
        }
    }

    /// The local maintenance loop: a [`SandboxManager::maintain_once`] every `every`. A
    /// worker that keeps the record leaves eviction to the scheduler (`local_eviction`
    /// false), which tiers copies by the whole fleet's use and sends `maintain` jobs.
    pub async fn maintain(
        self: Arc<Self>,
        every: Duration,
        local_eviction: bool,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            self.maintain_once(Instant::now(), round, local_eviction)
                .await;
            round += 1;
        }
    }

    /// One round of the local maintenance loop at `now` (`round` counts from 0): remove
    /// template versions nothing holds any more, and, with `local_eviction`, recompute the
    /// top repositories from this worker's own use (every fifth round, the first included)
    /// and evict released copies by their tiers; then refill the pool. Returns how many
    /// copies were evicted.
    pub async fn maintain_once(&self, now: Instant, round: u64, local_eviction: bool) -> usize {
        self.templates.prune().await;
        let mut evicted = 0;
        if local_eviction {
            if round.is_multiple_of(5) {
                self.recompute_top();
            }
            evicted = self.evict(now).await;
            if evicted > 0 {
                tracing::info!(evicted, "evicted released working copies");
            }
        }
        if let Err(e) = self.refill_pool().await {
            tracing::warn!(error = %e, "could not refill the sandbox pool");
        }
        evicted
    }
}
