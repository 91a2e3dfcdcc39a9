//! Giving a sandbox up: its working copy is cleaned and kept in the cache of released copies
//! for the next clone of the repository, or removed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;

use super::SandboxManager;
use super::cache::CachedCopy;
use crate::git::{RunOptions, in_phase};
use gitfleet_contract::steps::StepPhase;

impl SandboxManager {
    /// Gives a sandbox up. Its working copy is kept for the next clone of the same
    /// repository when it is full (not shallow), made from the current template, there is
    /// room, and it can be cleaned: its index and tracked files reset to HEAD and every
    /// untracked or ignored file removed, so what the previous agent left is gone before
    /// the copy waits in the cache (the next clone only moves it to its branch). Otherwise
    /// it is removed. Returns whether it was kept.
    ///
    /// Within a recorded run, its git calls are the run's steps in phase `sandbox`.
    pub async fn release(&self, id: &str, org: Option<&str>) -> Result<bool, JobError> {
        in_phase(StepPhase::Sandbox, self.release_now(id, org)).await
    }

    async fn release_now(&self, id: &str, org: Option<&str>) -> Result<bool, JobError> {
        let sandbox = {
            let mut live = self.live.lock().expect("not poisoned");
            // Another organization's sandbox is not there, for this job.
            match live.get(id) {
                Some(s) if s.org.as_deref() == org => live.remove(id),
                _ => None,
            }
        }
        .ok_or_else(|| self.not_found(id))?;
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
        let clean = wanted
            && self
                .clean(&sandbox.work(), &sandbox.repo, sandbox.status_scope())
                .await;
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
    async fn clean(&self, work: &Path, repo: &RepoUrl, scope: Option<Vec<String>>) -> bool {
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
                .git_copy(work, repo, args, options())
                .await
                .map(|o| o.status == 0)
                .unwrap_or(false);
            if !ok {
                return false;
            }
        }
        true
    }
}
