//! Released working copies, kept per repository and recycled by the next clone of that
//! repository (moving a cleaned copy to a new branch costs ≈ 15 ms where a fresh checkout of
//! a 3,000-file repository costs seconds), and evicted by DESIGN.md's TTL tiers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::template::Template;

/// How long a released copy of a repository is kept, from how that repository is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Among the ten most used repositories: never evicted.
    Top,
    /// Used in the last 10 minutes: kept 2 hours after release.
    Hot,
    /// Used 10 to 60 minutes ago: kept 30 minutes after release.
    Warm,
    /// Unused for over an hour: evicted at once.
    Cold,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Top => "top",
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }

    fn keep_for(self) -> Option<Duration> {
        match self {
            Tier::Top => None,
            Tier::Hot => Some(Duration::from_secs(2 * 3600)),
            Tier::Warm => Some(Duration::from_secs(30 * 60)),
            Tier::Cold => Some(Duration::ZERO),
        }
    }
}

/// A released working copy.
#[derive(Debug, Clone)]
pub struct CachedCopy {
    /// The sandbox directory (the working tree is its `work/`).
    pub dir: PathBuf,
    /// The id of the sandbox it was (its row in the registry names it; the scheduler's
    /// eviction asks for copies by it).
    pub sandbox_id: Option<String>,
    pub released_at: Instant,
    /// The template version it was made from (held, so it stays on disk).
    pub template: Arc<Template>,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    count: u64,
    last: Instant,
}

/// The released copies of one worker, and how each repository is used.
#[derive(Debug, Default)]
pub struct Cache {
    copies: HashMap<String, Vec<CachedCopy>>,
    uses: HashMap<String, Use>,
    /// The most used repositories, as last computed by [`Cache::recompute_top`].
    top: Vec<String>,
}

/// How many repositories are never evicted.
pub const TOP_N: usize = 10;

impl Cache {
    /// Counts a use (a clone) of `repo`.
    pub fn record_use(&mut self, repo: &str, now: Instant) {
        let u = self.uses.entry(repo.to_string()).or_insert(Use {
            count: 0,
            last: now,
        });
        u.count += 1;
        u.last = now;
    }

    /// A released copy of `repo` to recycle, the most recently released first.
    pub fn take(&mut self, repo: &str) -> Option<CachedCopy> {
        let list = self.copies.get_mut(repo)?;
        let copy = list.pop();
        if list.is_empty() {
            self.copies.remove(repo);
        }
        copy
    }

    pub fn put(&mut self, repo: &str, copy: CachedCopy) {
        self.copies.entry(repo.to_string()).or_default().push(copy);
    }

    /// Removes and returns every copy `stale` says so of.
    pub fn remove_where(&mut self, stale: impl Fn(&CachedCopy) -> bool) -> Vec<CachedCopy> {
        let mut out = Vec::new();
        for list in self.copies.values_mut() {
            let (gone, kept): (Vec<_>, Vec<_>) = list.drain(..).partition(|c| stale(c));
            *list = kept;
            out.extend(gone);
        }
        self.copies.retain(|_, l| !l.is_empty());
        out
    }

    /// Released copies of `repo` kept now.
    pub fn count(&self, repo: &str) -> usize {
        self.copies.get(repo).map_or(0, Vec::len)
    }

    pub fn len(&self) -> usize {
        self.copies.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Recomputes the ten most used repositories (the priority task).
    pub fn recompute_top(&mut self) {
        let mut by_use: Vec<(&String, &Use)> = self.uses.iter().collect();
        by_use.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(b.1.last.cmp(&a.1.last)));
        self.top = by_use
            .into_iter()
            .take(TOP_N)
            .map(|(r, _)| r.clone())
            .collect();
    }

    pub fn tier(&self, repo: &str, now: Instant) -> Tier {
        if self.top.iter().any(|r| r == repo) {
            return Tier::Top;
        }
        let idle = self
            .uses
            .get(repo)
            .map(|u| now.saturating_duration_since(u.last))
            .unwrap_or(Duration::MAX);
        if idle < Duration::from_secs(10 * 60) {
            Tier::Hot
        } else if idle < Duration::from_secs(60 * 60) {
            Tier::Warm
        } else {
            Tier::Cold
        }
    }

    /// Removes and returns the copies that were the sandboxes `ids` (those still kept).
    pub fn remove_ids(&mut self, ids: &[String]) -> Vec<CachedCopy> {
        self.remove_where(|c| c.sandbox_id.as_ref().is_some_and(|id| ids.contains(id)))
    }

    /// Every copy kept now, with the cache key of its repository (the health check looks at
    /// them).
    pub fn copies(&self) -> impl Iterator<Item = (&str, &CachedCopy)> {
        self.copies
            .iter()
            .flat_map(|(key, copies)| copies.iter().map(move |c| (key.as_str(), c)))
    }

    /// Removes and returns the copies whose tier no longer keeps them at `now`.
    pub fn evict(&mut self, now: Instant) -> Vec<CachedCopy> {
        let tiers: HashMap<String, Tier> = self
            .copies
            .keys()
            .map(|r| (r.clone(), self.tier(r, now)))
            .collect();
        let mut out = Vec::new();
        for (repo, list) in self.copies.iter_mut() {
            let Some(keep) = tiers[repo].keep_for() else {
                continue;
            };
            let (gone, kept): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|c| now.saturating_duration_since(c.released_at) >= keep);
            *list = kept;
            out.extend(gone);
        }
        self.copies.retain(|_, l| !l.is_empty());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(at: Instant) -> CachedCopy {
        CachedCopy {
            dir: PathBuf::from("/nowhere"),
            sandbox_id: None,
            released_at: at,
            template: Arc::new(Template::new("t", "/nowhere")),
        }
    }

    #[test]
    fn each_tier_keeps_a_released_copy_for_its_time() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut cache = Cache::default();
        for repo in ["hot", "warm", "cold"] {
            cache.record_use(repo, t0);
            cache.put(repo, copy(t0));
        }
        // "warm" and "cold" were last used long before "now"; "hot" a minute ago.
        let now = t0 + 70 * min;
        cache.record_use("hot", now - min);
        assert_eq!(cache.tier("hot", now), Tier::Hot);
        cache.uses.get_mut("warm").unwrap().last = now - 20 * min;
        assert_eq!(cache.tier("warm", now), Tier::Warm);
        assert_eq!(cache.tier("cold", now), Tier::Cold);

        let gone: Vec<_> = cache
            .evict(now)
            .into_iter()
            .map(|c| c.released_at)
            .collect();
        // cold: at once; warm: released 70 min ago, over its 30 min; hot: within 2 h.
        assert_eq!(gone.len(), 2);
        assert!(cache.take("hot").is_some());
        assert!(cache.take("warm").is_none() && cache.take("cold").is_none());

        // A repository in constant use: its released copy is kept 2 h, then goes.
        cache.put("hot", copy(now));
        cache.record_use("hot", now + 118 * min);
        assert!(cache.evict(now + 119 * min).is_empty(), "hot keeps 2 h");
        cache.record_use("hot", now + 120 * min);
        assert_eq!(cache.evict(now + 121 * min).len(), 1);
    }

    /// The use tiers at their edges, exactly at and one second either side of each: used
    /// up to just under 10 minutes ago is hot, exactly 10 minutes ago warm; just under an
    /// hour ago warm, exactly an hour ago cold; a repository never used is cold.
    #[test]
    fn a_repository_changes_tier_exactly_at_ten_minutes_and_at_an_hour_of_disuse() {
        let t0 = Instant::now();
        let (sec, min) = (Duration::from_secs(1), Duration::from_secs(60));
        let mut cache = Cache::default();
        cache.record_use("r", t0);
        for (idle, tier) in [
            (Duration::ZERO, Tier::Hot),
            (10 * min - sec, Tier::Hot),
            (10 * min, Tier::Warm),
            (10 * min + sec, Tier::Warm),
            (60 * min - sec, Tier::Warm),
            (60 * min, Tier::Cold),
            (60 * min + sec, Tier::Cold),
        ] {
            assert_eq!(cache.tier("r", t0 + idle), tier, "idle {idle:?}");
        }
        assert_eq!(cache.tier("never-used", t0), Tier::Cold);
    }

    /// Each tier's keeping time at its edges: a hot repository's copy is kept until just
    /// under 2 hours after its release and evicted at exactly 2 hours; a warm one's until
    /// just under 30 minutes, evicted at exactly 30; a cold one's at once (the moment it is
    /// released).
    #[test]
    fn a_released_copy_is_evicted_exactly_when_its_tiers_time_is_up() {
        let t0 = Instant::now();
        let (sec, min) = (Duration::from_secs(1), Duration::from_secs(60));
        // (tier, how long it keeps a copy, how long before `now` the repository was used)
        for (tier, keep, idle) in [
            (Tier::Hot, 120 * min, sec),
            (Tier::Warm, 30 * min, 20 * min),
        ] {
            for (age, evicted) in [(keep - sec, false), (keep, true), (keep + sec, true)] {
                let mut cache = Cache::default();
                cache.put("r", copy(t0));
                let now = t0 + age;
                cache.record_use("r", now - idle);
                assert_eq!(cache.tier("r", now), tier);
                let gone = cache.evict(now).len();
                assert_eq!(
                    (gone, cache.count("r")),
                    if evicted { (1, 0) } else { (0, 1) },
                    "{tier:?} copy released {age:?} ago"
                );
            }
        }
        // Cold: evicted at the moment of its release.
        let mut cache = Cache::default();
        cache.record_use("r", t0);
        let now = t0 + 60 * min;
        cache.put("r", copy(now));
        assert_eq!(cache.tier("r", now), Tier::Cold);
        assert_eq!(cache.evict(now).len(), 1);
    }

    /// The top tier's edge: of eleven repositories, the tenth most used is never evicted
    /// and the eleventh falls back to its use tier; between two used as often, the one used
    /// last ranks first.
    #[test]
    fn the_tenth_most_used_repository_is_top_and_the_eleventh_is_not() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut cache = Cache::default();
        // r0 used 20 times ... r8 12 times; r9 and r10 3 times each, r9 last.
        for i in 0..11u64 {
            let repo = format!("r{i}");
            for _ in 0..(if i < 9 { 20 - i } else { 2 }) {
                cache.record_use(&repo, t0);
            }
            cache.put(&repo, copy(t0));
        }
        cache.record_use("r10", t0);
        cache.record_use("r9", t0 + sec);
        cache.recompute_top();
        let later = t0 + Duration::from_secs(24 * 3600);
        assert_eq!(cache.tier("r9", later), Tier::Top);
        assert_eq!(cache.tier("r10", later), Tier::Cold);
        let gone = cache.evict(later);
        assert_eq!(gone.len(), 1);
        assert_eq!((cache.count("r9"), cache.count("r10")), (1, 0));
    }

    #[test]
    fn the_ten_most_used_repositories_are_never_evicted() {
        let t0 = Instant::now();
        let mut cache = Cache::default();
        for i in 0..12 {
            let repo = format!("r{i}");
            for _ in 0..(20 - i) {
                cache.record_use(&repo, t0);
            }
            cache.put(&repo, copy(t0));
        }
        cache.recompute_top();
        let later = t0 + Duration::from_secs(30 * 24 * 3600);
        assert_eq!(cache.tier("r0", later), Tier::Top);
        assert_eq!(cache.tier("r11", later), Tier::Cold);
        let gone = cache.evict(later);
        assert_eq!(gone.len(), 2, "only r10 and r11 go");
        assert_eq!(cache.len(), 10);
    }

    #[test]
    fn copies_are_removed_by_the_id_of_the_sandbox_they_were() {
        let t0 = Instant::now();
        let mut cache = Cache::default();
        for (repo, id) in [("a", "w.1"), ("a", "w.2"), ("b", "w.3")] {
            cache.put(
                repo,
                CachedCopy {
                    sandbox_id: Some(id.into()),
                    ..copy(t0)
                },
            );
        }
        let gone = cache.remove_ids(&["w.2".into(), "w.3".into(), "w.9".into()]);
        let mut ids: Vec<_> = gone.into_iter().filter_map(|c| c.sandbox_id).collect();
        ids.sort();
        assert_eq!(ids, ["w.2", "w.3"]);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.count("b"), 0);
    }
}
