//! What the bubblewrap jail costs one git process: the same `git rev-parse HEAD` through
//! gitfleet's runner unjailed and jailed, alternating, `runs` of each, in a small
//! repository of its own. A git call spends about this much more time jailed whatever it
//! does (namespaces and mounts are set up before git starts); the whole-op figures come
//! from running the rest of git-bench with `--jail off` and `--jail bwrap`.

use std::time::Instant;

use anyhow::Context as _;
use gitfleet_core::git::{Git, GitConfig, JailMode, RunOptions};
use serde::Serialize;

use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct JailCost {
    pub unjailed: Summary,
    pub jailed: Summary,
    /// Median of (jailed - unjailed) over each pair of calls run back to back.
    pub pair_difference_median_ms: f64,
}

pub async fn run(runs: usize) -> anyhow::Result<JailCost> {
    let tmp = tempfile::Builder::new()
        .prefix("git-bench-jail-")
        .tempdir()
        .context("creating the temporary directory")?;
    let runner = |jail: JailMode, home: &str| {
        let mut config = GitConfig::new(tmp.path().join(home));
        config.jail = jail;
        Git::new(config)
    };
    let plain = runner(JailMode::Off, "home-off")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let jailed = runner(JailMode::Bwrap, "home-bwrap")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo)?;
    for args in [
        &["init", "--quiet"][..],
        &["commit", "--quiet", "--allow-empty", "-m", "one"],
    ] {
        plain
            .run(&repo, args, RunOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let (mut off, mut on, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        // Which side goes first alternates, so neither always runs on a warmer cache.
        let order = if i % 2 == 0 {
            [&plain, &jailed]
        } else {
            [&jailed, &plain]
        };
        let mut pair = [0.0; 2];
        for git in order {
            let started = Instant::now();
            git.run(&repo, &["rev-parse", "HEAD"], RunOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            pair[usize::from(git.jailed())] = ms;
        }
        off.push(pair[0]);
        on.push(pair[1]);
        diff.push(pair[1] - pair[0]);
    }
    Ok(JailCost {
        unjailed: Summary::of(&off),
        jailed: Summary::of(&on),
        pair_difference_median_ms: crate::stats::median(&diff),
    })
}
