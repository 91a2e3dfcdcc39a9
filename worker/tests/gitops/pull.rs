//! `pull` rebases (or merges) in the mirror and moves the sandbox with `reset --keep`:
//! uncommitted changes come along; a conflict, committed or not, is listed and leaves the
//! sandbox exactly as it was; a merge makes a two-parent commit.

use std::path::Path;

use gitfleet_testkit::fixtures::git;
use gitfleet_testkit::{Fleet, GitDaemon};
use serde_json::{Value, json};

use crate::support::{git_fleet, sample_repo, work_tree};

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

async fn write(fleet: &Fleet, sandbox: &Value, path: &str, content: &str) {
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": path, "content": content}]}),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_carries_changes_reports_conflicts_untouched_and_merges() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "p", "task_id": "t"}),
        )
        .await;
    let sb = c["sandbox_id"].clone();
    let work = work_tree(&fleet, "agent-p-t");

    // A local commit (pushed to the agent branch) and an uncommitted change.
    write(&fleet, &sb, "local.txt", "mine\n").await;
    fleet
        .ok("push", json!({"sandbox_id": sb, "message": "local work"}))
        .await;
    write(&fleet, &sb, "docs/guide.md", "guide, edited\n").await;

    // Upstream changes another file: rebase; the uncommitted edit is still there.
    upstream(&fleet, &bare, "README.md", "# sample\nupstream 1\n");
    let pl = fleet.ok("pull", json!({"sandbox_id": sb})).await;
    assert_eq!(
        (pl["updated"].clone(), pl["conflicts"].clone()),
        (json!(true), json!([]))
    );
    let s = fleet.ok("status", json!({"sandbox_id": sb})).await;
    assert_eq!(s["head_sha"], pl["head_sha"]);
    assert_eq!(s["modified"], json!(["docs/guide.md"]), "{s}");
    assert_eq!(
        (s["ahead"].as_i64(), s["behind"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# sample\nupstream 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("docs/guide.md")).unwrap(),
        "guide, edited\n"
    );

    // Upstream changes the file edited (uncommitted) here: listed, nothing moves.
    upstream(&fleet, &bare, "docs/guide.md", "guide, theirs\n");
    let before = s["head_sha"].clone();
    let pl = fleet.ok("pull", json!({"sandbox_id": sb})).await;
    assert_eq!(pl["conflicts"], json!(["docs/guide.md"]), "{pl}");
    assert_eq!(
        (pl["updated"].clone(), pl["head_sha"].clone()),
        (json!(false), before.clone())
    );
    assert_eq!(
        std::fs::read_to_string(work.join("docs/guide.md")).unwrap(),
        "guide, edited\n"
    );

    // Upstream changes the file committed here: a rebase conflict, nothing moves.
    write(&fleet, &sb, "docs/guide.md", "guide\n").await; // undo the edit
    upstream(&fleet, &bare, "local.txt", "theirs\n");
    let pl = fleet.ok("pull", json!({"sandbox_id": sb})).await;
    assert_eq!(pl["conflicts"], json!(["local.txt"]), "{pl}");
    assert_eq!(pl["head_sha"], before);
    assert_eq!(
        std::fs::read_to_string(work.join("local.txt")).unwrap(),
        "mine\n"
    );

    // A merge instead: the same conflict; then, once resolved upstream, a merge commit.
    let pl = fleet
        .ok("pull", json!({"sandbox_id": sb, "rebase": false}))
        .await;
    assert_eq!(pl["conflicts"], json!(["local.txt"]), "{pl}");
    upstream(&fleet, &bare, "local.txt", "mine\n");
    let pl = fleet
        .ok("pull", json!({"sandbox_id": sb, "rebase": false}))
        .await;
    assert_eq!(
        (pl["updated"].clone(), pl["conflicts"].clone()),
        (json!(true), json!([]))
    );
    let parents = git(&work, ["rev-list", "--parents", "-n", "1", "HEAD"]).unwrap();
    assert_eq!(
        parents.split_whitespace().count(),
        3,
        "a merge commit: {parents}"
    );
    let upstream_main = git(&bare, ["rev-parse", "main"]).unwrap();
    assert!(parents.contains(upstream_main.trim()), "{parents}");
    let s = fleet.ok("status", json!({"sandbox_id": sb})).await;
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}: {s}");
    }
    fleet.shutdown().await;
}
