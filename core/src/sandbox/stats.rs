//! What one worker does with each repository, counted for the dashboard's Repositories
//! view: sandboxes made by source (cache, pool, template, cold), mirror fetches, pushes,
//! rebases and conflicts, per repository and organization.
//!
//! Counting is a map update under a mutex, nothing more, so it costs a job nothing it
//! would notice. The worker's flush loop takes the deltas every few seconds
//! ([`RepoStats::take`]), measures the size of the mirrors used since the last flush (off
//! the job path) and hands them to the record writer, which adds them to `repo_stats` once
//! (see `gitfleet_store::RepoStatsFlush`). Memory is bounded: the map holds only what
//! happened since the last flush, and at most [`MAX_ENTRIES`] repositories of it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use gitfleet_contract::Redactor;
use gitfleet_contract::rules::RepoUrl;
use gitfleet_store::{RepoStatsDelta, SandboxSource};

/// Repositories (per organization) counted between two flushes, at most. Past it, what
/// happens to a repository not yet counted since the last flush is dropped (and said so
/// in the log at the flush): a worker touching that many repositories in a few seconds
/// is not one whose per-repository figures anyone reads one by one.
pub const MAX_ENTRIES: usize = 10_000;

/// The counters of one worker.
#[derive(Debug)]
pub struct RepoStats {
    redactor: Redactor,
    inner: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    entries: HashMap<(String, Option<String>), Entry>,
    dropped: u64,
}

#[derive(Debug, Default)]
struct Entry {
    delta: RepoStatsDelta,
    /// The mirror, to measure at the flush (it was used since the last one).
    mirror: Option<PathBuf>,
}

/// One flush's worth: the deltas, and the mirror of each to measure.
#[derive(Debug, Default)]
pub struct Taken {
    pub rows: Vec<(RepoStatsDelta, Option<PathBuf>)>,
    /// Events not counted because the map was full.
    pub dropped: u64,
}

impl RepoStats {
    /// Counters whose repository URLs pass `redactor` (the worker's: it knows its tokens).
    pub fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            inner: Mutex::default(),
        }
    }

    /// Applies `change` to the entry of `repo` for `org`.
    fn count(&self, repo: &RepoUrl, org: Option<&str>, change: impl FnOnce(&mut Entry)) {
        let mut pending = self.inner.lock().expect("not poisoned");
        let key = (repo.url.clone(), org.map(str::to_string));
        let full = pending.entries.len() >= MAX_ENTRIES;
        let entry = match pending.entries.get_mut(&key) {
            Some(e) => e,
            None if full => {
                pending.dropped += 1;
                return;
            }
            None => pending.entries.entry(key).or_insert_with(|| Entry {
                delta: RepoStatsDelta {
                    repo_url: self.redactor.redact(&repo.url),
                    org_id: org.map(str::to_string),
                    ..Default::default()
                },
                mirror: None,
            }),
        };
        entry.delta.last_used_at = Some(Utc::now());
        change(entry);
    }

    /// A sandbox of `repo` made from `source`, for the organization the repository is
    /// reached for; `mirror` is the mirror it came from.
    pub fn made(&self, repo: &RepoUrl, source: SandboxSource, mirror: PathBuf) {
        self.count(repo, repo.org.as_deref(), |e| {
            e.delta.made(source);
            e.mirror = Some(mirror);
        });
    }

    /// A fetch of `repo`'s mirror from the remote (or its first clone) for `org`'s job
    /// (`None`: one without an organization, or the worker's own maintenance).
    pub fn fetched(&self, repo: &RepoUrl, org: Option<&str>, mirror: PathBuf) {
        self.count(repo, org, |e| {
            e.delta.fetches += 1;
            e.delta.last_fetch_at = Some(Utc::now());
            e.mirror = Some(mirror);
        });
    }

    /// A push that landed; `rebased` when it was rebased onto a branch that had moved.
    pub fn pushed(&self, repo: &RepoUrl, rebased: bool) {
        self.count(repo, repo.org.as_deref(), |e| {
            e.delta.pushes += 1;
            e.delta.rebases += u64::from(rebased);
        });
    }

    /// A push that failed with `conflict`.
    pub fn conflicted(&self, repo: &RepoUrl) {
        self.count(repo, repo.org.as_deref(), |e| e.delta.conflicts += 1);
    }

    /// Everything counted since the last call, leaving nothing behind.
    pub fn take(&self) -> Taken {
        let pending = std::mem::take(&mut *self.inner.lock().expect("not poisoned"));
        Taken {
            rows: pending
                .entries
                .into_values()
                .map(|e| (e.delta, e.mirror))
                .collect(),
            dropped: pending.dropped,
        }
    }
}

/// Bytes on disk of the mirror at `path` (every file under it), walked on a blocking
/// thread; 0 if it is not there.
pub async fn mirror_bytes(path: PathBuf) -> u64 {
    super::limits::own_object_bytes(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str, org: Option<&str>) -> RepoUrl {
        let mut r = gitfleet_contract::rules::repo_url("repo_url", url, true).unwrap();
        r.org = org.map(str::to_string);
        r
    }

    #[test]
    fn counts_per_repository_and_organization_and_take_leaves_nothing() {
        let stats = RepoStats::new(Redactor::default());
        let a = repo("git://example.com/a.git", Some("acme"));
        let a_other = repo("git://example.com/a.git", Some("globex"));
        stats.made(&a, SandboxSource::Cold, "/m/a".into());
        stats.made(&a, SandboxSource::Cache, "/m/a".into());
        stats.made(&a_other, SandboxSource::Pool, "/m/a".into());
        stats.pushed(&a, true);
        stats.conflicted(&a);
        stats.fetched(&a, None, "/m/a".into());
        let mut rows: Vec<_> = stats.take().rows.into_iter().map(|(d, _)| d).collect();
        rows.sort_by(|x, y| x.org_id.cmp(&y.org_id));
        assert_eq!(rows.len(), 3, "{rows:?}");
        let (none, acme, globex) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!((none.org_id.as_deref(), none.fetches), (None, 1));
        assert_eq!(
            (acme.made_cold, acme.made_cache, acme.pushes, acme.rebases),
            (1, 1, 1, 1)
        );
        assert_eq!(acme.conflicts, 1);
        assert_eq!((globex.made_pool, globex.made_cold), (1, 0));
        assert!(stats.take().rows.is_empty());
    }

    #[test]
    fn memory_is_bounded_and_what_does_not_fit_is_counted_as_dropped() {
        let stats = RepoStats::new(Redactor::default());
        for i in 0..MAX_ENTRIES + 5 {
            let r = repo(&format!("git://example.com/r{i}.git"), None);
            stats.made(&r, SandboxSource::Pool, "/m".into());
        }
        // One already counted still counts.
        stats.made(
            &repo("git://example.com/r0.git", None),
            SandboxSource::Pool,
            "/m".into(),
        );
        let taken = stats.take();
        assert_eq!((taken.rows.len(), taken.dropped), (MAX_ENTRIES, 5));
    }
}
