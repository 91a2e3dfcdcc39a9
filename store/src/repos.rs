//! Reading the per-repository figures back (`repo_stats`, written by workers' flushes) and
//! the cache hit rate (from the sandbox registry): the dashboard's Repositories view and
//! its overview, `GET /v1/repositories` and `GET /v1/cache/hit-rate`.
//!
//! Every figure is per organization: a filter by organization reads only the rows of that
//! organization's jobs, so a repository two organizations use shows each only its own.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CursorError, Store, StoreError};
use gitfleet_contract::rfc3339_micros;

/// The order of the repository list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RepoSort {
    /// Most recently used first (the default).
    #[default]
    Recent,
    /// Most sandboxes made first.
    Uses,
}

impl RepoSort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "recent" => Some(RepoSort::Recent),
            "uses" => Some(RepoSort::Uses),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RepoSort::Recent => "recent",
            RepoSort::Uses => "uses",
        }
    }
}

/// Which repositories to list. Each field set narrows the list (exact matches).
#[derive(Debug, Clone, Default)]
pub struct RepoFilter {
    /// Only the figures of this organization's jobs (`None`: every organization's, and
    /// those of jobs without one: for admin keys).
    pub org: Option<String>,
    /// Only what this worker did.
    pub worker: Option<String>,
    pub repo: Option<String>,
    /// Only repositories among the fleet's top ten (`true`) or not (`false`).
    pub pinned: Option<bool>,
    pub sort: RepoSort,
    /// The next page: the rows after this one in the list's order.
    pub after: Option<RepoCursor>,
    pub limit: i64,
}

/// Where a page of the repository list ended: the last row's sort key and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCursor {
    pub sort: RepoSort,
    /// Microseconds of `last_used_at` (by recency) or the uses (by use).
    pub key: i64,
    pub repo_url: String,
}

impl RepoCursor {
    /// base64url (no padding) of `<sort>.<key>.<url>`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}.{}",
            self.sort.as_str(),
            self.key,
            self.repo_url
        ))
    }

    /// Reads a cursor [`RepoCursor::encode`] made for a list in `sort` order.
    pub fn decode(text: &str, sort: RepoSort) -> Result<Self, CursorError> {
        let bad =
            |why: &str| CursorError(format!("{why} (pass the `next` cursor of a page as it is)"));
        if text.is_empty() || text.len() > 4096 {
            return Err(bad("must be 1-4096 characters"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad("not base64url"))?;
        let inner = String::from_utf8(bytes).map_err(|_| bad("not a cursor of this listing"))?;
        let mut parts = inner.splitn(3, '.');
        let (Some(s), Some(key), Some(url)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not a cursor of this listing"));
        };
        let cursor_sort = RepoSort::parse(s).ok_or_else(|| bad("not a cursor of this listing"))?;
        if cursor_sort != sort {
            return Err(bad(&format!(
                "made for sort={}, not sort={}",
                cursor_sort.as_str(),
                sort.as_str()
            )));
        }
        let key = key
            .parse::<i64>()
            .map_err(|_| bad("not a cursor of this listing"))?;
        if url.is_empty() {
            return Err(bad("not a cursor of this listing"));
        }
        Ok(RepoCursor {
            sort,
            key,
            repo_url: url.to_string(),
        })
    }
}

/// One repository: the figures of the organization(s) the list is for, fleet-wide and per
/// worker.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RepositoryRow {
    /// Without credentials.
    pub repo_url: String,
    /// Sandboxes made of it (every clone).
    pub uses: i64,
    /// Clones served by a released copy recycled from the cache (`made_cache`).
    pub cache_hits: i64,
    /// Clones that had to check out afresh (`made_pool + made_template + made_cold`).
    pub cache_misses: i64,
    pub made_pool: i64,
    pub made_cache: i64,
    pub made_template: i64,
    pub made_cold: i64,
    /// Mirror fetches from the remote, every worker's.
    pub fetches: i64,
    /// Pushes that landed (each `push` or `change`).
    pub pushes: i64,
    /// Of those, pushes that were rebased onto a branch that had moved.
    pub rebases: i64,
    /// Pushes that failed with `conflict`.
    pub conflicts: i64,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// Among the fleet's ten most used repositories (the scheduler's priority task): its
    /// released copies are never evicted.
    pub pinned: bool,
    /// Its rank among them (1 the most used), when pinned.
    pub rank: Option<i32>,
    /// Per worker, most recently used first.
    pub workers: Vec<RepoWorker>,
}

/// What one worker did with a repository.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RepoWorker {
    pub worker_id: String,
    pub uses: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub fetches: i64,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// The worker's mirror of the repository, bytes on disk, as last measured (after a
    /// job used it; absent until then).
    pub mirror_bytes: Option<i64>,
    pub pushes: i64,
    pub rebases: i64,
    pub conflicts: i64,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One page of the repository list.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoPage {
    pub rows: Vec<RepositoryRow>,
    pub next: Option<RepoCursor>,
}

/// Sandboxes made over a period, and how many of them recycled a released copy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct HitRate {
    pub made: i64,
    pub cache_hits: i64,
    /// `cache_hits / made`; absent when nothing was made.
    pub rate: Option<f64>,
}

impl HitRate {
    fn of(made: i64, cache_hits: i64) -> Self {
        HitRate {
            made,
            cache_hits,
            rate: (made > 0).then(|| cache_hits as f64 / made as f64),
        }
    }
}

/// The cache hit rate over the last hour and the last day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct HitRates {
    pub last_hour: HitRate,
    pub last_day: HitRate,
}

impl Store {
    /// One page of repositories matching `filter`, in its order, and the cursor of the
    /// next page when more match. Two statements: the page (grouped by repository), then
    /// the per-worker rows of the repositories on it.
    pub async fn repositories(&self, filter: &RepoFilter) -> Result<RepoPage, StoreError> {
        let limit = filter.limit.max(0);
        let (after_key, after_url) = match &filter.after {
            Some(c) => (Some(c.key), Some(c.repo_url.as_str())),
            None => (None, None),
        };
        let by_uses = filter.sort == RepoSort::Uses;
        let rows = sqlx::query!(
            r#"
SELECT r.repo_url AS "repo_url!", r.made_pool AS "made_pool!", r.made_cache AS "made_cache!",
       r.made_template AS "made_template!", r.made_cold AS "made_cold!",
       r.fetches AS "fetches!", r.pushes AS "pushes!", r.rebases AS "rebases!",
       r.conflicts AS "conflicts!", r.last_used_at, r.last_fetch_at, p.rank AS "rank?",
       r.sort_key AS "sort_key!"
  FROM (SELECT repo_url,
               SUM(made_pool)::int8 AS made_pool, SUM(made_cache)::int8 AS made_cache,
               SUM(made_template)::int8 AS made_template, SUM(made_cold)::int8 AS made_cold,
               SUM(fetches)::int8 AS fetches, SUM(pushes)::int8 AS pushes,
               SUM(rebases)::int8 AS rebases, SUM(conflicts)::int8 AS conflicts,
               MAX(last_used_at) AS last_used_at, MAX(last_fetch_at) AS last_fetch_at,
               CASE WHEN $4 THEN SUM(made_pool + made_cache + made_template + made_cold)::int8
                    ELSE (EXTRACT(EPOCH FROM MAX(last_used_at)) * 1000000)::int8 END AS sort_key
          FROM repo_stats
         WHERE ($1::text IS NULL OR org_id = $1)
           AND ($2::text IS NULL OR worker_id = $2)
           AND ($3::text IS NULL OR repo_url = $3)
         GROUP BY repo_url) r
  LEFT JOIN repo_priority p ON p.repo_url = r.repo_url
 WHERE ($5::bool IS NULL OR (p.rank IS NOT NULL) = $5)
   AND ($7::text IS NULL OR r.sort_key < $6 OR (r.sort_key = $6 AND r.repo_url > $7))
 ORDER BY r.sort_key DESC, r.repo_url
 LIMIT $8
"#,
            filter.org,
            filter.worker,
            filter.repo,
            by_uses,
            filter.pinned,
            after_key,
            after_url,
            limit + 1,
        )
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() as i64 > limit;
        let mut page: Vec<(i64, RepositoryRow)> = rows
            .into_iter()
            .take(limit as usize)
            .map(|r| {
                let misses = r.made_pool + r.made_template + r.made_cold;
                (
                    r.sort_key,
                    RepositoryRow {
                        uses: r.made_cache + misses,
                        cache_hits: r.made_cache,
                        cache_misses: misses,
                        repo_url: r.repo_url,
                        made_pool: r.made_pool,
                        made_cache: r.made_cache,
                        made_template: r.made_template,
                        made_cold: r.made_cold,
                        fetches: r.fetches,
                        pushes: r.pushes,
                        rebases: r.rebases,
                        conflicts: r.conflicts,
                        last_used_at: r.last_used_at,
                        last_fetch_at: r.last_fetch_at,
                        pinned: r.rank.is_some(),
                        rank: r.rank,
                        workers: Vec::new(),
                    },
                )
            })
            .collect();
        let urls: Vec<String> = page.iter().map(|(_, r)| r.repo_url.clone()).collect();
        let mut workers = self.repo_workers(filter, &urls).await?;
        for (_, row) in &mut page {
            row.workers = workers.remove(&row.repo_url).unwrap_or_default();
        }
        let next = page.last().filter(|_| more).map(|(key, r)| RepoCursor {
            sort: filter.sort,
            key: *key,
            repo_url: r.repo_url.clone(),
        });
        Ok(RepoPage {
            rows: page.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }

    /// The per-worker figures of `urls`, within `filter`'s organization and worker.
    async fn repo_workers(
        &self,
        filter: &RepoFilter,
        urls: &[String],
    ) -> Result<HashMap<String, Vec<RepoWorker>>, StoreError> {
        if urls.is_empty() {
            return Ok(HashMap::new());
        }
        // Over organizations (for an admin), the mirror's size is the one measured last.
        let rows = sqlx::query!(
            r#"
SELECT repo_url, worker_id,
       SUM(made_pool + made_template + made_cold)::int8 AS "misses!",
       SUM(made_cache)::int8 AS "hits!", SUM(fetches)::int8 AS "fetches!",
       SUM(pushes)::int8 AS "pushes!", SUM(rebases)::int8 AS "rebases!",
       SUM(conflicts)::int8 AS "conflicts!", MAX(last_fetch_at) AS last_fetch_at,
       MAX(last_used_at) AS last_used_at,
       (ARRAY_AGG(mirror_bytes ORDER BY updated_at DESC)
            FILTER (WHERE mirror_bytes IS NOT NULL))[1] AS mirror_bytes
  FROM repo_stats
 WHERE repo_url = ANY($1)
   AND ($2::text IS NULL OR org_id = $2)
   AND ($3::text IS NULL OR worker_id = $3)
 GROUP BY repo_url, worker_id
 ORDER BY MAX(last_used_at) DESC, worker_id
"#,
            urls,
            filter.org,
            filter.worker,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Vec<RepoWorker>> = HashMap::new();
        for r in rows {
            out.entry(r.repo_url).or_default().push(RepoWorker {
                worker_id: r.worker_id,
                uses: r.hits + r.misses,
                cache_hits: r.hits,
                cache_misses: r.misses,
                fetches: r.fetches,
                last_fetch_at: r.last_fetch_at,
                mirror_bytes: r.mirror_bytes,
                pushes: r.pushes,
                rebases: r.rebases,
                conflicts: r.conflicts,
                last_used_at: r.last_used_at,
            });
        }
        Ok(out)
    }

    /// The share of sandboxes made over the last hour and day that recycled a released
    /// copy, for `org` (`None`: the whole fleet). Read from the registry's rows made in
    /// the last day (an index on their creation time); rows recorded before their source
    /// was kept are left out.
    pub async fn hit_rates(&self, org: Option<&str>) -> Result<HitRates, StoreError> {
        let r = sqlx::query!(
            r#"
SELECT COUNT(*) FILTER (WHERE created_at >= now() - interval '1 hour') AS "hour_made!",
       COUNT(*) FILTER (WHERE created_at >= now() - interval '1 hour' AND source = 'cache')
           AS "hour_hits!",
       COUNT(*) AS "day_made!",
       COUNT(*) FILTER (WHERE source = 'cache') AS "day_hits!"
  FROM git_sandboxes
 WHERE created_at >= now() - interval '1 day'
   AND source IS NOT NULL
   AND ($1::text IS NULL OR org_id = $1)
"#,
            org,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(HitRates {
            last_hour: HitRate::of(r.hour_made, r.hour_hits),
            last_day: HitRate::of(r.day_made, r.day_hits),
        })
    }
}
