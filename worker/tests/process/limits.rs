//! The oversize-repository attack against the `gitfleet-worker` binary, its limits set by
//! the documented variables: a repository whose pack is a few kilobytes but whose one file
//! is 8 MiB of zeros is refused `invalid_input` before checkout, nothing of it stays on
//! disk under the worker's sandbox root, and the worker goes on cloning other repositories.
//! (The issue's own figures, a 300 MB file under a 1 MB pack, work the same against the
//! defaults; building and fetching that pack costs seconds of CPU, so the limits here are
//! scaled down: 1 MiB per file, 4 MiB per sandbox.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_client::{ErrorKind, JobStatus};
use gitfleet_testkit::{GitDaemon, fixtures};
use serde_json::json;

use crate::processes::ProcessFleet;

/// Every file under `dir` (not following links), with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), entry.metadata().unwrap().len()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_worker_binary_refuses_an_oversize_repository_before_checkout_and_keeps_nothing_of_it()
{
    let tmp = tempfile::tempdir().unwrap();
    let remotes = tmp.path().join("remotes");
    let huge = fixtures::bare_repo_with_zeros(
        &remotes,
        "huge.git",
        &[("README.md", "# huge\n")],
        &[("big.bin", 8 << 20)],
    );
    let pack: u64 = files_under(&huge.join("objects")).iter().map(|f| f.1).sum();
    assert!(pack < 1 << 20, "the pack is under 1 MB: {pack}");
    fixtures::bare_repo(&remotes, "repo.git", &[("README.md", "# fine\n")]);
    let daemon = GitDaemon::start(&remotes).unwrap();

    let q = ProcessFleet::new().await;
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();
    let worker = q
        .spawn_worker(&[
            ("GITFLEET_SANDBOX_ROOT", root_s),
            ("GITFLEET_MAX_BLOB_BYTES", "1048576"),
            ("GITFLEET_SANDBOX_MAX_BYTES", "4194304"),
            ("GITFLEET_SANDBOX_MAX_FILES", "1000"),
        ])
        .await;

    let job = q
        .submit(
            "jobs",
            "clone",
            json!({"repo_url": daemon.url("huge.git"), "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let r = q
        .wait_for_job(
            &job.job_id,
            Duration::from_secs(30),
            "the clone refused",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    assert_eq!(r.attempts, 1, "not retried: {r:?}");
    let error = r.error.expect("an error");
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error}");
    assert_eq!(
        error.message,
        "repo_url: branch \"main\" would check out \"big.bin\", which is 8388608 bytes, over \
         the limit of 1048576 bytes per file (GITFLEET_MAX_BLOB_BYTES)"
    );

    // Nothing of it on disk: no sandbox directory holds a working tree, and everything under
    // the root (the template, the mirror with its small pack) is far below the 8 MiB.
    let sandboxes = root.join(&worker.id).join("sandboxes");
    for dir in std::fs::read_dir(&sandboxes).unwrap().flatten() {
        assert!(
            !dir.path().join("work").exists(),
            "{} has a working tree",
            dir.path().display()
        );
    }
    let everything = files_under(&root);
    let total: u64 = everything.iter().map(|f| f.1).sum();
    assert!(
        total < 1 << 20,
        "{total} bytes under the root: {everything:?}"
    );

    // The worker goes on serving.
    let job = q
        .submit(
            "jobs",
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "b", "task_id": "t"}),
        )
        .await;
    let r = q
        .wait_for_job(
            &job.job_id,
            Duration::from_secs(30),
            "the clone done",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Done, "{r:?}\n{}", worker.log_text());
}
