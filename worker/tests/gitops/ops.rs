//! Every op of the job contract, its result fields, and its errors.

use base64::Engine;
use gitfleet_client::{ErrorKind, JobStatus};
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use serde_json::json;

use crate::support::{git_fleet, sample_repo};

fn is_sha(v: &serde_json::Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_runs_against_a_git_daemon_with_the_contract_fields() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let main_sha = git(&bare, ["rev-parse", "main"])
        .unwrap()
        .trim()
        .to_string();

    // clone
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    assert!(
        sandbox.starts_with(&format!("{}.", fleet.worker_ids()[0])),
        "{sandbox}"
    );
    assert_eq!(c["agent_branch"], "agent-a1-t1");
    assert_eq!(c["head_sha"], main_sha.as_str());
    assert_eq!(c["cache_hit"], false);

    // status of a fresh sandbox
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["branch"], "agent-a1-t1");
    assert_eq!(s["head_sha"], main_sha.as_str());
    assert_eq!(
        (s["ahead"].as_i64(), s["behind"].as_i64()),
        (Some(0), Some(0))
    );
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}");
    }

    // write_files: new, changed, binary, then status and diff see them
    let png = base64::engine::general_purpose::STANDARD.encode([0u8, 159, 146, 150]);
    let w = fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "src/new.rs", "content": "pub fn new() {}\n"},
                {"path": "README.md", "content": "# sample\nchanged\n"},
                {"path": "img/x.bin", "content": png, "encoding": "base64"},
            ]}),
        )
        .await;
    assert_eq!(w, json!({"written": 3, "deleted": 0}));
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["modified"], json!(["README.md"]));
    assert_eq!(s["untracked"], json!(["img/x.bin", "src/new.rs"]));
    let d = fleet.ok("diff", json!({"sandbox_id": sandbox})).await;
    assert_eq!(
        (
            d["files_changed"].as_u64(),
            d["insertions"].as_u64(),
            d["deletions"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert!(d["diff"].as_str().unwrap().contains("+changed"), "{d}");
    assert_eq!(d["truncated"], false);
    let staged = fleet
        .ok("diff", json!({"sandbox_id": sandbox, "staged": true}))
        .await;
    assert_eq!(staged["files_changed"], 0);
    let w = fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "docs/guide.md", "delete": true}]}),
        )
        .await;
    assert_eq!(w, json!({"written": 0, "deleted": 1}));

    // push: a commit on the agent branch of the remote, with the job's trailer
    let p = fleet
        .run(
            "push",
            json!({"sandbox_id": sandbox, "message": "agent work"}),
        )
        .await;
    assert_eq!(p.status, JobStatus::Done, "{:?}", p.error);
    let r = p.result.clone().unwrap();
    assert!(is_sha(&r["commit_sha"]), "{r}");
    assert_eq!(r["branch"], "agent-a1-t1");
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["rebased"], false);
    let remote_head = git(&bare, ["rev-parse", "agent-a1-t1"]).unwrap();
    assert_eq!(remote_head.trim(), r["commit_sha"].as_str().unwrap());
    let body = git(&bare, ["log", "-1", "--format=%B", "agent-a1-t1"]).unwrap();
    assert!(
        body.contains(&format!("Gitfleet-Job: {}", p.job_id)),
        "{body}"
    );
    let files = git(&bare, ["ls-tree", "-r", "--name-only", "agent-a1-t1"]).unwrap();
    assert!(
        files.contains("src/new.rs")
            && files.contains("img/x.bin")
            && !files.contains("docs/guide.md")
    );
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["ahead"], 1, "one commit ahead of main");

    // pull: someone moves main; the sandbox rebases onto it
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
    std::fs::write(other.join("CHANGELOG.md"), "upstream\n").unwrap();
    git(&other, ["add", "-A"]).unwrap();
    git(&other, ["commit", "--quiet", "-m", "upstream change"]).unwrap();
    git(&other, ["push", "--quiet", "origin", "main"]).unwrap();
    let before = s["head_sha"].clone();
    let pl = fleet.ok("pull", json!({"sandbox_id": sandbox})).await;
    assert_eq!(pl["updated"], true);
    assert_eq!(pl["conflicts"], json!([]));
    assert_ne!(pl["head_sha"], before);
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(
        (s["ahead"].as_i64(), s["behind"].as_i64()),
        (Some(1), Some(0))
    );

    // release keeps the copy; the next clone of the repository recycles it
    let rel = fleet.ok("release", json!({"sandbox_id": sandbox})).await;
    assert_eq!(rel, json!({"cached": true}));
    let gone = fleet.run("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(gone.status, JobStatus::Dead);
    assert_eq!(gone.error.unwrap().kind, ErrorKind::SandboxNotFound);
    let c2 = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a2", "task_id": "t9"}),
        )
        .await;
    assert_eq!(c2["cache_hit"], true);
    let upstream_main = git(&bare, ["rev-parse", "main"]).unwrap();
    assert_eq!(
        c2["head_sha"],
        upstream_main.trim(),
        "a recycled copy is at the remote's latest"
    );
    let s2 = fleet
        .ok("status", json!({"sandbox_id": c2["sandbox_id"]}))
        .await;
    assert_eq!(
        s2["untracked"],
        json!([]),
        "nothing of the previous agent is left"
    );
    assert_eq!(s2["branch"], "agent-a2-t9");

    // change: the whole thing in one job
    let ch = fleet
        .ok(
            "change",
            json!({"repo_url": url, "agent_id": "a3", "task_id": "t3",
                   "files": [{"path": "notes.txt", "content": "from change\n"}],
                   "message": "one-shot change"}),
        )
        .await;
    assert_eq!(ch["branch"], "agent-a3-t3");
    assert_eq!(
        git(&bare, ["show", "agent-a3-t3:notes.txt"])
            .unwrap()
            .trim(),
        "from change"
    );
    assert_eq!(
        fixtures::commit_count(&bare, "agent-a3-t3"),
        fixtures::commit_count(&bare, "main") + 1
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op_errors_name_the_problem() {
    let mut fleet = git_fleet().workers(1).start().await;
    sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();

    let missing = fleet
        .run(
            "clone",
            json!({"repo_url": daemon.url("nope.git"), "agent_id": "a", "task_id": "t"}),
        )
        .await;
    assert_eq!(missing.status, JobStatus::Dead);
    let e = missing.error.unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e:?}");

    let branch = fleet
        .run("clone", json!({"repo_url": daemon.url("repo.git"), "branch": "nope", "agent_id": "a", "task_id": "t"}))
        .await;
    let e = branch.error.unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.starts_with("branch:"), "{e:?}");

    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let nothing = fleet
        .run(
            "push",
            json!({"sandbox_id": c["sandbox_id"], "message": "empty"}),
        )
        .await;
    let e = nothing.error.unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("nothing to commit"), "{e:?}");

    // A sandbox id naming this worker but no sandbox of it.
    let ghost = format!("{}.{}", fleet.worker_ids()[0], ulid::Ulid::new());
    let e = fleet
        .run("status", json!({"sandbox_id": ghost}))
        .await
        .error
        .unwrap();
    assert_eq!(e.kind, ErrorKind::SandboxNotFound);
    fleet.shutdown().await;
}
