//! The repositories the fleet works on, as the dashboard's Repositories view shows them
//! (uses, cache hits and misses, each worker's mirror, pushes and conflicts, pinned in the
//! top ten or not), and the cache hit rate of its overview. Every figure is the caller's
//! organization's own (an admin sees all, or one organization's with `org`).

use axum::Json;
use axum::extract::State;

use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::Params;
use crate::problem::Problem;
use crate::routes::jobs::urlencode;
use crate::routes::page_response;
use crate::state::AppState;
use gitfleet_client::store::{HitRates, RepoCursor, RepoFilter, RepoPage, RepoSort, RepositoryRow};

/// `GET /v1/repositories` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoParams {
    /// An admin key's filter by organization: only the figures of its jobs.
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
    /// Only what this worker did.
    pub worker: Option<String>,
    /// The repository URL, exactly.
    pub repo: Option<String>,
    /// Only repositories among the fleet's top ten (`true`), or only the others (`false`).
    pub pinned: Option<bool>,
    /// `recent` (most recently used first, the default) or `uses` (most sandboxes made
    /// first).
    #[schemars(extend("enum" = ["recent", "uses"]))]
    pub sort: Option<String>,
    /// Repositories per page, 1-500 (default 100).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
    /// Where the page starts: the `next` of the previous page (same `sort`).
    pub cursor: Option<String>,
}

/// A page of repositories.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RepositoryPage {
    pub repositories: Vec<RepositoryRow>,
    /// The next page's URL (also in the `Link` header, `rel="next"`); absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/repositories`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<RepoParams>,
) -> Result<Response, Problem> {
    let page = repositories_for(&state, &caller, &p).await?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    let next = page.next.map(|c| next_url(&p, limit, &c.encode()));
    let page = RepositoryPage {
        repositories: page.rows,
        next,
    };
    Ok(page_response(&page, page.next.as_deref()))
}

/// Repositories per page when `limit` is not given.
const DEFAULT_LIMIT: i64 = 100;

/// One page of the repositories matching `p` that `caller` may see, with the next page's
/// cursor: what `GET /v1/repositories` answers, and the dashboard's Repositories page
/// shows.
pub async fn repositories_for(
    state: &AppState,
    caller: &Caller,
    p: &RepoParams,
) -> Result<RepoPage, Problem> {
    let org = caller.scope(p.org.as_deref())?;
    let sort = match p.sort.as_deref() {
        None => RepoSort::Recent,
        Some(s) => RepoSort::parse(s).ok_or_else(|| {
            Problem::bad_param("sort", format!("unknown order {s:?}; known: recent, uses"))
        })?,
    };
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param(
            "limit",
            format!("{limit} is not from 1 to 500"),
        ));
    }
    let after = p
        .cursor
        .as_deref()
        .map(|c| RepoCursor::decode(c, sort))
        .transpose()
        .map_err(|e| Problem::bad_param("cursor", e))?;
    let filter = RepoFilter {
        org,
        worker: p.worker.clone(),
        repo: p.repo.clone(),
        pinned: p.pinned,
        sort,
        after,
        limit,
    };
    Ok(state.store.repositories(&filter).await?)
}

/// The URL of the page after this one: the same filters, the new cursor.
fn next_url(p: &RepoParams, limit: i64, cursor: &str) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("org", &p.org),
        ("worker", &p.worker),
        ("repo", &p.repo),
        ("sort", &p.sort),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if let Some(pinned) = p.pinned {
        q.push(("pinned", pinned.to_string()));
    }
    q.push(("limit", limit.to_string()));
    q.push(("cursor", cursor.to_string()));
    let query: Vec<String> = q
        .into_iter()
        .map(|(k, v)| format!("{k}={}", urlencode(&v)))
        .collect();
    format!("/v1/repositories?{}", query.join("&"))
}

/// `GET /v1/cache/hit-rate` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HitRateParams {
    /// An admin key's filter by organization.
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
}

/// `GET /v1/cache/hit-rate`: of the sandboxes made in the last hour and day, how many
/// recycled a released copy (the caller's organization's; an admin's: the fleet's).
pub async fn hit_rate(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<HitRateParams>,
) -> Result<Json<HitRates>, Problem> {
    Ok(Json(
        hit_rates_for(&state, &caller, p.org.as_deref()).await?,
    ))
}

/// The cache hit rates of the caller's organization (an admin's: of `org`, or the
/// fleet's): what `GET /v1/cache/hit-rate` answers, and the dashboard's overview shows.
pub async fn hit_rates_for(
    state: &AppState,
    caller: &Caller,
    org: Option<&str>,
) -> Result<HitRates, Problem> {
    let org = caller.scope(org)?;
    Ok(state.store.hit_rates(org.as_deref()).await?)
}
