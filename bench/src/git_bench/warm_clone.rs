//! Warm clone: the repository is already on the worker (its mirror, and a released working
//! copy in the cache). Primed with clone → release until every worker has kept a copy, then
//! `runs` times, one after another, on the shared queue: clone (timed, enqueue → result),
//! release (timed apart).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fleet::Fleet;
use crate::stats::Summary;

const BOUND: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
pub struct WarmClone {
    /// Enqueue → result.
    pub latency: Summary,
    /// `finished_at - started_at`: the part spent in the worker.
    pub in_worker: Summary,
    /// The release after each clone, enqueue → result (not part of the clone's figure; the
    /// copy is cleaned there, before it waits for the next clone).
    pub release: Summary,
    pub cache_hits: usize,
    pub runs: usize,
}

pub fn clone_args(url: &str, task: &str) -> Value {
    json!({"repo_url": url, "branch": "main", "agent_id": "bench", "task_id": task})
}

/// Releases a sandbox (routed to its worker); returns whether its copy was kept, and the
/// ms enqueue → result.
pub async fn release(fleet: &Fleet, sandbox_id: &Value) -> anyhow::Result<(bool, f64)> {
    let (result, timed) = fleet
        .ok("release", json!({"sandbox_id": sandbox_id}), BOUND)
        .await?;
    Ok((result["cached"].as_bool().unwrap_or(false), timed.ms))
}

pub async fn run(fleet: &Fleet, url: &str, runs: usize) -> anyhow::Result<WarmClone> {
    let mut primed = BTreeSet::new();
    for i in 0.. {
        if primed.len() == fleet.worker_ids.len() {
            break;
        }
        if i >= 10 * fleet.worker_ids.len() {
            bail!("could not leave a cached copy on every worker in {i} clones");
        }
        let (result, timed) = fleet
            .ok("clone", clone_args(url, &format!("prime{i}")), BOUND)
            .await?;
        if release(fleet, &result["sandbox_id"]).await?.0 {
            primed.insert(timed.record.worker.clone().context("no worker on record")?);
        }
    }
    let (mut latency, mut in_worker, mut releases, mut hits) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    for i in 0..runs {
        let (result, timed) = fleet
            .ok("clone", clone_args(url, &format!("warm{i}")), BOUND)
            .await?;
        latency.push(timed.ms);
        in_worker.push(timed.run_ms());
        if result["cache_hit"] == true {
            hits += 1;
        }
        releases.push(release(fleet, &result["sandbox_id"]).await?.1);
    }
    Ok(WarmClone {
        latency: Summary::of(&latency),
        in_worker: Summary::of(&in_worker),
        release: Summary::of(&releases),
        cache_hits: hits,
        runs,
    })
}
