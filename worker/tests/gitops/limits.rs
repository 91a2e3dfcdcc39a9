//! Disk limits of a sandbox (bytes, files, largest file) and the write caps of a job, as
//! an agent meets them: an oversize repository refused before anything of it is checked
//! out, a write or a pull that would take a sandbox over refused with its tree as it was.
//!
//! Small limits ([`LIMITS`]) and repositories of zeros (packs of a few kilobytes) keep the
//! tests fast; the process test (`worker/tests/process/limits.rs`) runs the same attack
//! against the binary.

use std::path::Path;

use gitfleet_client::{ErrorKind, JobRecord, JobStatus, QueueError};
use gitfleet_contract::ops::{JobLimits, Rules};
use gitfleet_core::ops::Ops;
use gitfleet_core::sandbox::SandboxLimits;
use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{Fleet, FleetBuilder, GitDaemon};
use serde_json::{Value, json};

use crate::support::{files_on_disk, git_fleet, sample_repo, work_tree};

const LIMITS: SandboxLimits = SandboxLimits {
    max_bytes: 1 << 20,
    max_files: 20,
    max_blob_bytes: 512 << 10,
};

/// The sample repository's three files, in bytes.
const SAMPLE_BYTES: u64 = 45;

fn limited_fleet() -> FleetBuilder {
    git_fleet().git_with(|g| g.limits = LIMITS)
}

fn refused(record: &JobRecord, wanted: &[&str]) {
    assert_eq!(record.status, JobStatus::Dead, "{record:?}");
    assert_eq!(record.attempts, 1, "never retried: {record:?}");
    let error = record.error.as_ref().expect("an error");
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error}");
    for w in wanted {
        assert!(error.message.contains(w), "{w:?} not in: {}", error.message);
    }
}

/// Every file under `dir` (not following links), with its size.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
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

/// The sandbox directories of every worker, pooled (empty) or in use.
fn sandbox_dirs(fleet: &Fleet) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for worker in std::fs::read_dir(fleet.sandbox_root()).unwrap().flatten() {
        for dir in std::fs::read_dir(worker.path().join("sandboxes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(dir.path());
        }
    }
    out
}

fn clone_args(url: &str, agent: &str) -> Value {
    json!({"repo_url": url, "agent_id": agent, "task_id": "t"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_repository_is_refused_before_checkout_and_nothing_of_it_stays_on_disk() {
    let mut fleet = limited_fleet().workers(1).start().await;
    let remotes = fleet.remotes();
    // A pack of a few kilobytes that checks out 5 MiB in one file.
    let huge = fixtures::bare_repo_with_zeros(
        &remotes,
        "huge.git",
        &[("README.md", "# huge\n"), ("src/lib.rs", "fn f() {}\n")],
        &[("big.bin", 5 << 20)],
    );
    let pack: u64 = files_under(&huge.join("objects")).iter().map(|f| f.1).sum();
    assert!(pack < 1 << 20, "the pack is under 1 MB: {pack}");
    // Files each under the largest-file limit, too many bytes together.
    fixtures::bare_repo_with_zeros(
        &remotes,
        "wide.git",
        &[],
        &[
            ("a.bin", 400 << 10),
            ("b.bin", 400 << 10),
            ("c.bin", 400 << 10),
        ],
    );
    // One file more than a sandbox may hold.
    let many: Vec<(String, String)> = (0..21)
        .map(|i| (format!("f{i}.txt"), "x\n".into()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    fixtures::bare_repo(&remotes, "many.git", &many);
    sample_repo(&remotes, "repo.git");
    let daemon = GitDaemon::start(&remotes).unwrap();

    let url = daemon.url("huge.git");
    let record = fleet.run("clone", clone_args(&url, "a")).await;
    refused(
        &record,
        &[
            "repo_url: branch \"main\" would check out \"big.bin\", which is 5242880 bytes",
            "over the limit of 524288 bytes per file (GITFLEET_MAX_BLOB_BYTES)",
        ],
    );
    // Shallow, the same: refused from the mirror's listing, before the shallow clone.
    let shallow = json!({"repo_url": url, "agent_id": "b", "task_id": "t", "shallow": true});
    refused(
        &fleet.run("clone", shallow).await,
        &["GITFLEET_MAX_BLOB_BYTES"],
    );
    refused(
        &fleet
            .run("clone", clone_args(&daemon.url("wide.git"), "c"))
            .await,
        &[
            "would check out 1228800 bytes, over the limit of 1048576 bytes per sandbox \
             (GITFLEET_SANDBOX_MAX_BYTES)",
        ],
    );
    refused(
        &fleet
            .run("clone", clone_args(&daemon.url("many.git"), "d"))
            .await,
        &[
            "would check out 21 files, over the limit of 20 files per sandbox (GITFLEET_SANDBOX_MAX_FILES)",
        ],
    );

    // Nothing of those is on disk: no working tree in any sandbox directory (the pool's are
    // empty), and nothing under the root the size of what was refused (the mirrors hold
    // the packs, a few kilobytes).
    for dir in sandbox_dirs(&fleet) {
        assert!(
            !dir.join("work").exists(),
            "{} has a working tree",
            dir.display()
        );
    }
    let everything = files_under(&fleet.sandbox_root());
    let total: u64 = everything.iter().map(|f| f.1).sum();
    assert!(
        total < 1 << 20,
        "{total} bytes under the root: {everything:?}"
    );

    // Only what a sparse checkout keeps counts.
    let sparse = json!({"repo_url": url, "agent_id": "e", "task_id": "t", "sparse_paths": ["src"]});
    fleet.ok("clone", sparse).await;
    assert_eq!(
        files_on_disk(&work_tree(&fleet, "agent-e-t")),
        ["src/lib.rs"]
    );

    // A normal repository still clones; released, its copy is cached and recycled.
    let repo = daemon.url("repo.git");
    let c = fleet.ok("clone", clone_args(&repo, "f")).await;
    assert_eq!(c["cache_hit"], false);
    fleet
        .ok("release", json!({"sandbox_id": c["sandbox_id"]}))
        .await;
    let c = fleet.ok("clone", clone_args(&repo, "g")).await;
    assert_eq!(c["cache_hit"], true, "{c}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_grown_over_the_limit_is_refused_before_a_cached_copy_is_touched() {
    let mut fleet = limited_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let c = fleet.ok("clone", clone_args(&url, "a")).await;
    fleet
        .ok("release", json!({"sandbox_id": c["sandbox_id"]}))
        .await;

    // Someone outside the fleet pushes a file over the limit to a new branch.
    let other = fleet.tmp().join("other");
    git(
        fleet.tmp(),
        [
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::fs::write(other.join("big.txt"), "b".repeat(600 << 10)).unwrap();
    git(&other, ["checkout", "--quiet", "-b", "grown"]).unwrap();
    git(&other, ["add", "-A"]).unwrap();
    git(&other, ["commit", "--quiet", "-m", "big"]).unwrap();
    git(&other, ["push", "--quiet", "origin", "grown"]).unwrap();

    let grown = json!({"repo_url": url, "agent_id": "b", "task_id": "t", "branch": "grown"});
    refused(
        &fleet.run("clone", grown).await,
        &[
            "branch \"grown\" would check out \"big.txt\"",
            "GITFLEET_MAX_BLOB_BYTES",
        ],
    );
    // The cached copy was not taken for it: the next clone of main recycles it, and no
    // working tree anywhere has the big file.
    let c = fleet.ok("clone", clone_args(&url, "c")).await;
    assert_eq!(c["cache_hit"], true, "{c}");
    for dir in sandbox_dirs(&fleet) {
        assert!(!dir.join("work/big.txt").exists(), "{}", dir.display());
    }
    fleet.shutdown().await;
}

async fn write(fleet: &Fleet, sandbox: &Value, files: Value) -> JobRecord {
    fleet
        .run(
            "write_files",
            json!({"sandbox_id": sandbox, "files": files}),
        )
        .await
}

fn done(record: &JobRecord) {
    assert_eq!(record.status, JobStatus::Done, "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_the_sandbox_limits_is_refused_and_leaves_the_tree_as_it_was() {
    let mut fleet = limited_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok("clone", clone_args(&daemon.url("repo.git"), "w"))
        .await;
    let sb = c["sandbox_id"].clone();
    let work = work_tree(&fleet, "agent-w-t");
    let text = |n: usize| "a".repeat(n);

    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "a.txt", "content": text(400_000)}]),
        )
        .await,
    );
    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "b.txt", "content": text(400_000)}]),
        )
        .await,
    );
    let before = files_on_disk(&work);

    // Bytes: the running count is exact (the checkout's 45 bytes and both files).
    let over = SAMPLE_BYTES + 800_000 + 300_000;
    refused(
        &write(
            &fleet,
            &sb,
            json!([{"path": "c.txt", "content": text(300_000)}]),
        )
        .await,
        &[&format!(
            "files: the sandbox would hold {over} bytes, over the limit of 1048576 bytes \
             per sandbox (GITFLEET_SANDBOX_MAX_BYTES)"
        )],
    );
    assert_eq!(files_on_disk(&work), before, "nothing written");

    // A replacement counts as its new size less the old one.
    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "a.txt", "content": text(500_000)}]),
        )
        .await,
    );
    assert_eq!(
        std::fs::metadata(work.join("a.txt")).unwrap().len(),
        500_000
    );

    // The largest file.
    refused(
        &write(
            &fleet,
            &sb,
            json!([{"path": "d.txt", "content": text(600_000)}]),
        )
        .await,
        &[
            "files[0].path: the file is 600000 bytes, over the limit of 524288 bytes per file \
           (GITFLEET_MAX_BLOB_BYTES)",
        ],
    );

    // Files: 3 + a.txt + b.txt = 5; sixteen more would be 21. Nothing of the job is
    // written, not even its delete.
    let mut files: Vec<Value> = (0..16)
        .map(|i| json!({"path": format!("new/{i}.txt"), "content": "n"}))
        .collect();
    files.push(json!({"path": "b.txt", "delete": true}));
    files.push(json!({"path": "new/16.txt", "content": "n"}));
    refused(
        &write(&fleet, &sb, json!(files)).await,
        &[
            "files: the sandbox would hold 21 files, over the limit of 20 files per sandbox \
           (GITFLEET_SANDBOX_MAX_FILES)",
        ],
    );
    let now = files_on_disk(&work);
    assert_eq!(now, before, "nothing written or deleted");
    // Without the last file it fits (20 files), deleting b.txt on the way.
    files.pop();
    done(&write(&fleet, &sb, json!(files)).await);
    assert_eq!(files_on_disk(&work).len(), 20);
    assert!(!work.join("b.txt").exists());

    // The sandbox works as before: its changes are pushed.
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": sb, "message": "within the limits"}),
        )
        .await;
    let landed = git(&bare, ["rev-parse", "agent-w-t"]).unwrap();
    assert_eq!(p["commit_sha"], landed.trim());
    fleet.shutdown().await;
}

/// Commits `content` to `path` on the remote's main, as someone outside the fleet.
fn upstream(fleet: &Fleet, bare: &Path, path: &str, content: &str) {
    let other = fleet.tmp().join(format!("other-{}", ulid::Ulid::new()));
    git(
        fleet.tmp(),
        [
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::fs::write(other.join(path), content).unwrap();
    git(&other, ["add", "-A"]).unwrap();
    git(&other, ["commit", "--quiet", "-m", "upstream"]).unwrap();
    git(&other, ["push", "--quiet", "origin", "main"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_that_would_take_the_sandbox_over_is_refused_before_the_tree_moves() {
    let mut fleet = limited_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok("clone", clone_args(&daemon.url("repo.git"), "p"))
        .await;
    let sb = c["sandbox_id"].clone();
    let work = work_tree(&fleet, "agent-p-t");
    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "local.txt", "content": "l".repeat(300_000)}]),
        )
        .await,
    );
    let before = files_on_disk(&work);

    // Upstream adds two files of 500 KB (each under the largest-file limit): with the
    // local 300 KB the sandbox would hold more than 1 MiB.
    upstream(&fleet, &bare, "big1.txt", &"b".repeat(500_000));
    upstream(&fleet, &bare, "big2.txt", &"b".repeat(500_000));
    let record = fleet.run("pull", json!({"sandbox_id": sb})).await;
    let over = SAMPLE_BYTES + 300_000 + 1_000_000;
    refused(
        &record,
        &[
            "pull: moving onto ",
            &format!("would leave the sandbox with {over} bytes, over the limit of 1048576"),
            "GITFLEET_SANDBOX_MAX_BYTES",
        ],
    );
    assert_eq!(files_on_disk(&work), before, "the tree did not move");
    let s = fleet.ok("status", json!({"sandbox_id": sb})).await;
    assert_eq!(s["head_sha"], c["head_sha"], "{s}");
    assert_eq!(s["untracked"], json!(["local.txt"]), "{s}");

    // Without the local file it fits.
    done(&write(&fleet, &sb, json!([{"path": "local.txt", "delete": true}])).await);
    let pl = fleet.ok("pull", json!({"sandbox_id": sb})).await;
    assert_eq!(pl["updated"], true, "{pl}");
    assert!(work.join("big2.txt").is_file());
    // And the count moved with the tree: one more byte-heavy write is refused.
    refused(
        &write(
            &fleet,
            &sb,
            json!([{"path": "x.txt", "content": "x".repeat(60_000)}]),
        )
        .await,
        &[&format!(
            "files: the sandbox would hold {} bytes",
            SAMPLE_BYTES + 1_000_000 + 60_000
        )],
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shallow_pull_over_the_limits_is_refused_and_moved_back() {
    let mut fleet = limited_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let args = json!({"repo_url": daemon.url("repo.git"), "agent_id": "s", "task_id": "t",
                      "shallow": true});
    let c = fleet.ok("clone", args).await;
    let sb = c["sandbox_id"].clone();
    let work = work_tree(&fleet, "agent-s-t");
    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "local.txt", "content": "l".repeat(300_000)}]),
        )
        .await,
    );
    let before = files_on_disk(&work);
    upstream(&fleet, &bare, "big1.txt", &"b".repeat(500_000));
    upstream(&fleet, &bare, "big2.txt", &"b".repeat(500_000));

    // A shallow sandbox rebases in place: checked right after, and moved back.
    let record = fleet.run("pull", json!({"sandbox_id": sb})).await;
    refused(
        &record,
        &["pull: moving onto ", "GITFLEET_SANDBOX_MAX_BYTES"],
    );
    assert_eq!(files_on_disk(&work), before, "moved back");
    let s = fleet.ok("status", json!({"sandbox_id": sb})).await;
    assert_eq!(s["head_sha"], c["head_sha"], "{s}");
    assert_eq!(s["untracked"], json!(["local.txt"]), "{s}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_files_and_change_keep_to_the_job_write_caps_at_the_worker_and_at_the_client() {
    let caps = JobLimits {
        max_write_bytes: 1_000,
        max_write_files: 3,
        ..Default::default()
    };
    let mut fleet = git_fleet()
        .ops(Ops::with_rules(Rules {
            limits: caps,
            ..Default::default()
        }))
        .workers(1)
        .start()
        .await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let c = fleet.ok("clone", clone_args(&url, "j")).await;
    let sb = c["sandbox_id"].clone();
    let work = work_tree(&fleet, "agent-j-t");
    let before = files_on_disk(&work);
    let four: Vec<Value> = (0..4)
        .map(|i| json!({"path": format!("f{i}.txt"), "content": "x"}))
        .collect();
    let heavy = json!([{"path": "a.txt", "content": "a".repeat(600)},
                       {"path": "b.txt", "content": "b".repeat(600)}]);

    // The fleet's client is at the defaults: the worker refuses.
    refused(
        &write(&fleet, &sb, json!(four)).await,
        &["files: 4 entries, over the limit of 3 per job (GITFLEET_JOB_MAX_WRITE_FILES)"],
    );
    refused(
        &write(&fleet, &sb, heavy.clone()).await,
        &[
            "files[1].content: takes the job to 1200 bytes, over the limit of 1000 bytes per \
           job (GITFLEET_JOB_MAX_WRITE_BYTES)",
        ],
    );
    assert_eq!(files_on_disk(&work), before);
    let commits = fixtures::commit_count(&bare, "main");
    let change = |files: Value| {
        json!({"repo_url": url, "agent_id": "k", "task_id": "t", "files": files,
               "message": "m", "target_branch": "main"})
    };
    refused(
        &fleet.run("change", change(json!(four))).await,
        &["GITFLEET_JOB_MAX_WRITE_FILES"],
    );
    refused(
        &fleet.run("change", change(heavy.clone())).await,
        &["GITFLEET_JOB_MAX_WRITE_BYTES"],
    );
    assert_eq!(
        fixtures::commit_count(&bare, "main"),
        commits,
        "nothing landed"
    );

    // A client with the same limits refuses them before they are enqueued.
    let client = fleet.client().clone().with_limits(caps);
    let spec =
        gitfleet_client::JobSpec::new("write_files", json!({"sandbox_id": sb, "files": heavy}));
    match client
        .submit(
            &gitfleet_client::Client::route(&spec),
            &spec,
            &Default::default(),
        )
        .await
    {
        Err(QueueError::Invalid(e)) => {
            assert!(e.message.contains("GITFLEET_JOB_MAX_WRITE_BYTES"), "{e}")
        }
        other => panic!("the client enqueued it: {other:?}"),
    }

    // Within the caps, both work.
    done(
        &write(
            &fleet,
            &sb,
            json!([{"path": "a.txt", "content": "a".repeat(1_000)}]),
        )
        .await,
    );
    let landed = fleet
        .ok(
            "change",
            change(json!([{"path": "c.txt", "content": "c".repeat(1_000)}])),
        )
        .await;
    assert_eq!(
        git(&bare, ["rev-parse", "main"]).unwrap().trim(),
        landed["commit_sha"]
    );
    fleet.shutdown().await;
}
