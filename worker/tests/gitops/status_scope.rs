//! `status` and `diff` ask git only about the paths `write_files` touched while the worker
//! knows the rest of the tree is HEAD. Every answer here is checked against a full `git
//! status` / `git diff` of the same working tree, run on disk with the testkit's plain git.

use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{Fleet, GitDaemon};
use serde_json::{Value, json};

use crate::support::{git_fleet, work_tree};

/// The contract's lists from a full `git status` of `work` (every file looked at).
fn full_status(work: &std::path::Path) -> Value {
    let out = git(
        work,
        [
            "status",
            "--porcelain=v2",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=all",
        ],
    )
    .unwrap();
    let (mut modified, mut untracked, mut staged) = (Vec::new(), Vec::new(), Vec::new());
    for entry in out.split('\0').filter(|e| !e.is_empty()) {
        if let Some(path) = entry.strip_prefix("? ") {
            untracked.push(path.to_string());
        } else if entry.starts_with("1 ") {
            let parts: Vec<&str> = entry.splitn(9, ' ').collect();
            let xy: Vec<char> = parts[1].chars().collect();
            if xy[0] != '.' {
                staged.push(parts[8].to_string());
            }
            if xy[1] != '.' {
                modified.push(parts[8].to_string());
            }
        }
    }
    json!({"staged": staged, "modified": modified, "untracked": untracked})
}

/// The diff op's answer is what a full `git diff` of the tree says (and `staged` is empty
/// exactly when `git diff --cached` is).
async fn check_diff(fleet: &Fleet, sandbox: &str, work: &std::path::Path) {
    let flags = [
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--ignore-submodules=all",
    ];
    let d = fleet.ok("diff", json!({"sandbox_id": sandbox})).await;
    let plain = git(work, flags).unwrap();
    assert_eq!(d["diff"].as_str().unwrap().trim_end(), plain);
    let numstat = git(work, flags.iter().copied().chain(["--numstat"])).unwrap();
    assert_eq!(
        d["files_changed"].as_u64().unwrap() as usize,
        numstat.lines().count()
    );
    let staged = fleet
        .ok("diff", json!({"sandbox_id": sandbox, "staged": true}))
        .await;
    let plain_staged = git(work, flags.iter().copied().chain(["--cached"])).unwrap();
    assert_eq!(staged["diff"].as_str().unwrap().trim_end(), plain_staged);
}

fn lists(status: &Value) -> Value {
    json!({
        "staged": status["staged"],
        "modified": status["modified"],
        "untracked": status["untracked"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_diff_of_touched_paths_agree_with_full_ones_through_writes_ignores_and_commits()
{
    let mut fleet = git_fleet().workers(1).start().await;
    fixtures::bare_repo(
        &fleet.remotes(),
        "repo.git",
        &[
            ("README.md", "# sample\n"),
            (".gitignore", "*.log\n"),
            ("src/lib.rs", "pub fn f() {}\n"),
            ("docs/guide.md", "guide\n"),
        ],
    );
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a", "task_id": "s"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, "agent-a-s");
    let status = || fleet.ok("status", json!({"sandbox_id": sandbox}));
    let write = |files: Value| {
        fleet.ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": files}),
        )
    };

    // Just cloned: nothing, and the branch lines still there.
    let s = status().await;
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;
    assert_eq!(s["untracked"], json!([]));
    assert_eq!(s["branch"], "agent-a-s");
    assert_eq!(s["head_sha"], c["head_sha"]);
    assert_eq!(
        (s["ahead"].as_i64(), s["behind"].as_i64()),
        (Some(0), Some(0))
    );

    // Changed, deleted, new (in a new directory), ignored.
    write(json!([
        {"path": "README.md", "content": "# changed\n"},
        {"path": "docs/guide.md", "delete": true},
        {"path": "new/deep/file.txt", "content": "new\n"},
        {"path": "./src//other.rs", "content": "// other\n"},
        {"path": "build.log", "content": "ignored\n"},
    ]))
    .await;
    let s = status().await;
    assert_eq!(s["modified"], json!(["README.md", "docs/guide.md"]));
    assert_eq!(s["untracked"], json!(["new/deep/file.txt", "src/other.rs"]));
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;

    // Writing a file back as it was: no longer listed.
    write(json!([{"path": "README.md", "content": "# sample\n"}])).await;
    let s = status().await;
    assert_eq!(s["modified"], json!(["docs/guide.md"]));
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;

    // A .gitignore that no longer ignores *.log: build.log, never touched since, shows.
    write(json!([{"path": ".gitignore", "content": "target/\n"}])).await;
    let s = status().await;
    assert_eq!(
        s["untracked"],
        json!(["build.log", "new/deep/file.txt", "src/other.rs"])
    );
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;

    // Committed and pushed (git ran: the tree is looked at in full again), then touched.
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": sandbox, "message": "all of it"}),
        )
        .await;
    let s = status().await;
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;
    assert_eq!(s["untracked"], json!([]));
    assert_eq!(s["head_sha"], p["commit_sha"]);
    assert_eq!(s["ahead"].as_i64(), Some(1));
    write(json!([{"path": "src/lib.rs", "content": "pub fn g() {}\n"}])).await;
    let s = status().await;
    assert_eq!(s["modified"], json!(["src/lib.rs"]));
    assert_eq!(lists(&s), full_status(&work));
    check_diff(&fleet, &sandbox, &work).await;
    fleet.shutdown().await;
}

/// `push` stages only the touched paths while the rest of the tree is known to be HEAD; the
/// commit must be what `git add -A .` would have made, deletions included and ignored files
/// left out (an ignored touched path makes the scoped `add` fail; it falls back to `.`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_touched_paths_commits_what_a_full_add_would() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = fixtures::bare_repo(
        &fleet.remotes(),
        "repo.git",
        &[
            ("README.md", "# sample\n"),
            (".gitignore", "*.log\n"),
            ("src/lib.rs", "pub fn f() {}\n"),
            ("docs/guide.md", "guide\n"),
        ],
    );
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a", "task_id": "p"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, "agent-a-p");
    let changed = |rev: &str| {
        git(&bare, ["show", "--name-status", "--format=", rev])
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    for (round, files, want) in [
        (
            "scoped",
            json!([
                {"path": "README.md", "content": "# changed\n"},
                {"path": "docs/guide.md", "delete": true},
                {"path": "src/new.rs", "content": "// new\n"},
            ]),
            vec!["M\tREADME.md", "D\tdocs/guide.md", "A\tsrc/new.rs"],
        ),
        (
            "with an ignored file",
            json!([
                {"path": "src/lib.rs", "content": "pub fn g() {}\n"},
                {"path": "build.log", "content": "ignored\n"},
            ]),
            vec!["M\tsrc/lib.rs"],
        ),
    ] {
        fleet
            .ok(
                "write_files",
                json!({"sandbox_id": sandbox, "files": files}),
            )
            .await;
        let p = fleet
            .ok("push", json!({"sandbox_id": sandbox, "message": round}))
            .await;
        let sha = p["commit_sha"].as_str().unwrap();
        assert_eq!(git(&bare, ["rev-parse", "agent-a-p"]).unwrap(), sha);
        assert_eq!(changed(sha), want, "{round}");
        let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
        assert_eq!(lists(&s), full_status(&work), "{round}");
        assert_eq!(s["untracked"], json!([]), "{round}");
        assert_eq!(s["modified"], json!([]), "{round}");
    }
    assert!(work.join("build.log").exists());
    fleet.shutdown().await;
}

/// Past 256 touched paths the worker stops keeping the list and `status` looks at the whole
/// tree again. Seen through a file written on disk behind the worker's back (which only a
/// whole-tree look can find): with 256 touched paths `status` asks git about those only,
/// and with the 257th about everything, agreeing with a full `git status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_256_touched_paths_status_looks_at_the_whole_tree() {
    let mut fleet = git_fleet().workers(1).start().await;
    crate::support::sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a", "task_id": "m"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, "agent-a-m");
    let file = |i: usize| format!("many/f{i:03}.txt");
    let files: Vec<Value> = (0..256)
        .map(|i| json!({"path": file(i), "content": format!("{i}\n")}))
        .collect();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": files}),
        )
        .await;
    std::fs::write(work.join("behind-its-back.txt"), "unseen\n").unwrap();

    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    let touched: Vec<String> = (0..256).map(file).collect();
    assert_eq!(s["untracked"], json!(touched), "256 paths: only those");

    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": file(256), "content": "256\n"}]}),
        )
        .await;
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    let mut everything: Vec<String> = (0..257).map(file).collect();
    everything.insert(0, "behind-its-back.txt".to_string());
    assert_eq!(
        s["untracked"],
        json!(everything),
        "257 paths: the whole tree"
    );
    assert_eq!(lists(&s), full_status(&work));
    fleet.shutdown().await;
}
