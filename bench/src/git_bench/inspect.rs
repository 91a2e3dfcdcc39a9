//! Status and diff on a sandbox of the 3,000-file repository after `write_files` changed
//! three files (two tracked files rewritten, one new file): `runs` of each, one after
//! another, routed to the sandbox's worker, enqueue → result. One untimed run of each
//! first, so the figures are of a sandbox in use rather than the first look after the write.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use serde_json::json;

use crate::fleet::Fleet;
use crate::stats::Summary;
use crate::warm_clone::{clone_args, release};

const BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct Inspect {
    pub status: Summary,
    pub status_in_worker: Summary,
    pub diff: Summary,
    pub diff_in_worker: Summary,
}

pub async fn run(
    fleet: &Fleet,
    url: &str,
    paths: &[String],
    runs: usize,
) -> anyhow::Result<Inspect> {
    let (Some(first), Some(middle)) = (paths.first(), paths.get(paths.len() / 2)) else {
        bail!("the repository has no files");
    };
    let (cloned, _) = fleet
        .ok(
            "clone",
            clone_args(url, "inspect"),
            Duration::from_secs(300),
        )
        .await?;
    let sandbox = cloned["sandbox_id"].clone();
    let files = json!([
        {"path": first, "content": "rewritten by git-bench\n"},
        {"path": middle, "content": "also rewritten by git-bench\nsecond line\n"},
        {"path": "bench/new-file.txt", "content": "new\n"},
    ]);
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": files}),
            BOUND,
        )
        .await?;
    let (status, _) = fleet
        .ok("status", json!({"sandbox_id": sandbox}), BOUND)
        .await?;
    let seen = (
        status["modified"].as_array().map_or(0, Vec::len),
        status["untracked"].as_array().map_or(0, Vec::len),
    );
    if seen != (2, 1) {
        bail!("status after writing 3 files: {status}");
    }
    fleet
        .ok("diff", json!({"sandbox_id": sandbox}), BOUND)
        .await?;

    let mut figures = Vec::new();
    for op in ["status", "diff"] {
        let (mut total, mut in_worker) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (_, timed) = fleet.ok(op, json!({"sandbox_id": sandbox}), BOUND).await?;
            total.push(timed.ms);
            in_worker.push(timed.run_ms());
        }
        figures.push((Summary::of(&total), Summary::of(&in_worker)));
    }
    release(fleet, &sandbox).await?;
    let [(status, status_in_worker), (diff, diff_in_worker)]: [_; 2] =
        figures.try_into().expect("two ops");
    Ok(Inspect {
        status,
        status_in_worker,
        diff,
        diff_in_worker,
    })
}
