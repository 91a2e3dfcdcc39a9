//! Cold clone: a repository no worker has seen (a fresh copy under a new name each time, so
//! no mirror and no cached copy), through gitfleet (clone job, enqueue → result) beside a
//! plain `git clone git://…` of the same copy into a temporary directory. The two alternate,
//! and so does which of them goes first.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::fixture;
use crate::fleet::Fleet;
use crate::stats::median;
use crate::warm_clone::{clone_args, release};

const BOUND: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
pub struct ColdClone {
    pub gitfleet_ms: Vec<f64>,
    /// The gitfleet clones' `finished_at - started_at`.
    pub gitfleet_in_worker_ms: Vec<f64>,
    pub plain_ms: Vec<f64>,
    pub gitfleet_median_ms: f64,
    pub plain_median_ms: f64,
    /// gitfleet median / plain median.
    pub ratio: f64,
    /// The median of each pair's gitfleet / plain (the two ran back to back, so a pair
    /// shares the machine's load of the moment).
    pub pair_ratio_median: f64,
}

/// `git clone --quiet <url> <dest>` with no system or global config; its wall time in ms.
async fn plain_clone(url: &str, dest: &Path, home: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let child = tokio::process::Command::new("git")
        .args(["clone", "--quiet", "--", url])
        .arg(dest)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning git clone")?;
    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .context("plain git clone timed out")??;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!(
            "plain git clone failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(ms)
}

pub async fn run(fleet: &Fleet, source: &Path, runs: usize) -> anyhow::Result<ColdClone> {
    let plain_root = fleet.scratch("plain")?;
    let home = fleet.scratch("plain-home")?;
    let (mut gitfleet, mut in_worker, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!(
            "cold-{i}-{}.git",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        fixture::serve_copy(source, &fleet.served(), &name).await?;
        let url = fleet.url(&name);
        let dest = plain_root.join(format!("clone-{i}"));
        for side in [i % 2, 1 - i % 2] {
            if side == 0 {
                let (result, timed) = fleet
                    .ok("clone", clone_args(&url, &format!("cold{i}")), BOUND)
                    .await?;
                if result["cache_hit"] != false {
                    bail!("a clone of a repository never seen was a cache hit: {result}");
                }
                gitfleet.push(timed.ms);
                in_worker.push(timed.run_ms());
                release(fleet, &result["sandbox_id"]).await?;
            } else {
                plain.push(plain_clone(&url, &dest, &home).await?);
            }
        }
        tokio::fs::remove_dir_all(&dest).await?;
    }
    let (g, p) = (median(&gitfleet), median(&plain));
    let pairs: Vec<f64> = gitfleet.iter().zip(&plain).map(|(g, p)| g / p).collect();
    Ok(ColdClone {
        gitfleet_ms: gitfleet,
        gitfleet_in_worker_ms: in_worker,
        plain_ms: plain,
        gitfleet_median_ms: g,
        plain_median_ms: p,
        ratio: g / p,
        pair_ratio_median: median(&pairs),
    })
}
