//! Clones that ask for less (`shallow`, `sparse_paths`) hold what was asked, and released
//! copies come back clean when the next clone of the repository recycles them.
//!
//! The working trees are read on disk (see `support::work_tree`), with the testkit's plain
//! `git`, not through the ops under test.
//!
//! Sparse clones use non-cone patterns (`git sparse-checkout set --no-cone /<path>`): only
//! what is under the given paths is checked out, top-level files included only when named
//! (cone mode would add them). The index still lists every file (the others carry the
//! skip-worktree bit), so a commit from a sparse clone leaves them as they were.

use std::path::{Path, PathBuf};

use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{Fleet, GitDaemon};
use serde_json::{Value, json};

use crate::support::{files_on_disk, git_fleet, work_tree};

/// Every file of the repository built by [`remote_with_history`], at its `main`.
const ALL_FILES: [&str; 8] = [
    "Cargo.toml",
    "README.md",
    "docs/api.md",
    "docs/guide.md",
    "src/lib.rs",
    "src/net/mod.rs",
    "src/net/tcp.rs",
    "tests/it.rs",
];

/// A bare repository `repo.git` with files in several directories and four commits on
/// `main` (the fixture's initial commit, then three made through a clone), and a daemon
/// serving it.
fn remote_with_history(fleet: &Fleet) -> (PathBuf, GitDaemon) {
    let remotes = fleet.remotes();
    let bare = fixtures::bare_repo(
        &remotes,
        "repo.git",
        &[
            ("README.md", "# history\n"),
            ("Cargo.toml", "[package]\nname = \"history\"\n"),
            ("src/lib.rs", "pub mod net;\n"),
            ("src/net/mod.rs", "pub fn connect() {}\n"),
            ("docs/guide.md", "guide\n"),
            ("tests/it.rs", "#[test]\nfn it() {}\n"),
        ],
    );
    let author = fleet.tmp().join("author");
    git(
        fleet.tmp(),
        [
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            author.to_str().unwrap(),
        ],
    )
    .unwrap();
    let commits: [(&str, &str, &str); 3] = [
        ("src/net/tcp.rs", "pub fn tcp() {}\n", "add tcp"),
        ("docs/api.md", "api\n", "document the api"),
        ("README.md", "# history\n\nthree commits later\n", "readme"),
    ];
    for (path, content, message) in commits {
        let full = author.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        git(&author, ["add", "-A"]).unwrap();
        git(&author, ["commit", "--quiet", "-m", message]).unwrap();
    }
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    assert_eq!(fixtures::commit_count(&bare, "main"), 4);
    let daemon = GitDaemon::start(&remotes).unwrap();
    (bare, daemon)
}

fn main_sha(bare: &Path) -> String {
    git(bare, ["rev-parse", "main"]).unwrap()
}

/// `git ls-tree -r <rev>` lines (mode, type, blob id, path) outside `src/`.
fn tree_outside_src(bare: &Path, rev: &str) -> Vec<String> {
    git(bare, ["ls-tree", "-r", rev])
        .unwrap()
        .lines()
        .filter(|l| !l.split('\t').nth(1).unwrap_or("").starts_with("src/"))
        .map(str::to_string)
        .collect()
}

fn clone_args(url: &str, agent: &str, extra: Value) -> Value {
    let mut args = json!({"repo_url": url, "agent_id": agent, "task_id": "t"});
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_and_sparse_clones_hold_what_was_asked() {
    let mut fleet = git_fleet().workers(1).start().await;
    let (bare, daemon) = remote_with_history(&fleet);
    let url = daemon.url("repo.git");
    let head = main_sha(&bare);

    // shallow: one commit of history, every file.
    let c = fleet
        .ok(
            "clone",
            clone_args(&url, "shallow", json!({"shallow": true})),
        )
        .await;
    assert_eq!(c["head_sha"], head.as_str());
    let work = work_tree(&fleet, "agent-shallow-t");
    assert_eq!(git(&work, ["rev-list", "--count", "HEAD"]).unwrap(), "1");
    assert_eq!(
        git(&work, ["rev-parse", "--is-shallow-repository"]).unwrap(),
        "true"
    );
    assert_eq!(files_on_disk(&work), ALL_FILES);

    // sparse, non-cone `/src`: only src/ on disk, no top-level file; full history.
    let c = fleet
        .ok(
            "clone",
            clone_args(&url, "sparse", json!({"sparse_paths": ["src"]})),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    assert_eq!(c["head_sha"], head.as_str());
    let work = work_tree(&fleet, "agent-sparse-t");
    assert_eq!(
        files_on_disk(&work),
        ["src/lib.rs", "src/net/mod.rs", "src/net/tcp.rs"]
    );
    assert_eq!(git(&work, ["rev-list", "--count", "HEAD"]).unwrap(), "4");
    // The index still has every file; those outside the sparse set are skip-worktree.
    let listed = git(&work, ["ls-files", "-t"]).unwrap();
    let mut skipped: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("S "))
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        [
            "Cargo.toml",
            "README.md",
            "docs/api.md",
            "docs/guide.md",
            "tests/it.rs"
        ],
        "{listed}"
    );
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}: absent files are not deletions");
    }

    // write_files + push from the sparse clone: the files outside the sparse set are in the
    // pushed commit, unchanged.
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "src/lib.rs", "content": "pub mod net;\npub mod more;\n"},
                {"path": "src/more.rs", "content": "pub fn more() {}\n"},
            ]}),
        )
        .await;
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["modified"], json!(["src/lib.rs"]));
    assert_eq!(s["untracked"], json!(["src/more.rs"]));
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": sandbox, "message": "from a sparse clone"}),
        )
        .await;
    let pushed = git(&bare, ["rev-parse", "agent-sparse-t"]).unwrap();
    assert_eq!(p["commit_sha"], pushed.as_str());
    assert_eq!(
        git(&bare, ["rev-parse", "agent-sparse-t~1"]).unwrap(),
        head,
        "one commit on top of main"
    );
    assert_eq!(
        git(
            &bare,
            ["diff", "--name-status", "main", "agent-sparse-t", "--"]
        )
        .unwrap(),
        "M\tsrc/lib.rs\nA\tsrc/more.rs",
        "the commit changed what was written, nothing else"
    );
    assert_eq!(
        tree_outside_src(&bare, "agent-sparse-t"),
        tree_outside_src(&bare, "main"),
        "the files outside the sparse set are in the commit, unchanged"
    );
    assert_eq!(tree_outside_src(&bare, "main").len(), 5);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_copy_is_recycled_and_comes_back_clean() {
    let mut fleet = git_fleet().workers(1).start().await;
    let (bare, daemon) = remote_with_history(&fleet);
    let url = daemon.url("repo.git");
    let head = main_sha(&bare);

    let c = fleet
        .ok("clone", clone_args(&url, "first", json!({})))
        .await;
    assert_eq!(c["cache_hit"], false);
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let old_work = work_tree(&fleet, "agent-first-t");
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "README.md", "content": "scribbled over\n"},
                {"path": "docs/guide.md", "delete": true},
                {"path": "scratch/notes.txt", "content": "left behind?\n"},
                {"path": "target/debug/out.bin", "content": "build output\n"},
            ]}),
        )
        .await;
    // Something staged, too (the ops never stage without committing, so by hand).
    git(&old_work, ["add", "--", "README.md"]).unwrap();
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["staged"], json!(["README.md"]));
    assert_eq!(s["modified"], json!(["docs/guide.md"]));
    assert_eq!(
        s["untracked"],
        json!(["scratch/notes.txt", "target/debug/out.bin"])
    );
    let r = fleet.ok("release", json!({"sandbox_id": sandbox})).await;
    assert_eq!(r, json!({"cached": true}));

    let c2 = fleet
        .ok("clone", clone_args(&url, "second", json!({})))
        .await;
    assert_eq!(c2["cache_hit"], true, "{c2}");
    assert_eq!(c2["agent_branch"], "agent-second-t");
    assert_eq!(c2["head_sha"], head.as_str());
    let s2 = fleet
        .ok("status", json!({"sandbox_id": c2["sandbox_id"]}))
        .await;
    assert_eq!(s2["branch"], "agent-second-t");
    assert_eq!(s2["head_sha"], head.as_str());
    assert_eq!(
        (s2["ahead"].as_i64(), s2["behind"].as_i64()),
        (Some(0), Some(0))
    );
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s2[list], json!([]), "{list}: nothing left over: {s2}");
    }
    let work = work_tree(&fleet, "agent-second-t");
    assert_eq!(work, old_work, "the same directory, recycled");
    assert_eq!(
        files_on_disk(&work),
        ALL_FILES,
        "ignored files too are gone"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# history\n\nthree commits later\n"
    );
    fleet.shutdown().await;
}

/// A sparse copy recycled for a full clone checks everything out, and a full copy recycled
/// for a sparse clone only the sparse set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycled_copy_takes_the_sparse_set_of_the_new_clone() {
    let mut fleet = git_fleet().workers(1).start().await;
    let (_bare, daemon) = remote_with_history(&fleet);
    let url = daemon.url("repo.git");

    let c = fleet
        .ok(
            "clone",
            clone_args(&url, "sparse", json!({"sparse_paths": ["docs"]})),
        )
        .await;
    assert_eq!(
        files_on_disk(&work_tree(&fleet, "agent-sparse-t")),
        ["docs/api.md", "docs/guide.md"]
    );
    let r = fleet
        .ok("release", json!({"sandbox_id": c["sandbox_id"]}))
        .await;
    assert_eq!(r["cached"], true);

    let c = fleet.ok("clone", clone_args(&url, "full", json!({}))).await;
    assert_eq!(c["cache_hit"], true);
    assert_eq!(files_on_disk(&work_tree(&fleet, "agent-full-t")), ALL_FILES);
    let r = fleet
        .ok("release", json!({"sandbox_id": c["sandbox_id"]}))
        .await;
    assert_eq!(r["cached"], true);

    let c = fleet
        .ok(
            "clone",
            clone_args(
                &url,
                "again",
                json!({"sparse_paths": ["tests", "Cargo.toml"]}),
            ),
        )
        .await;
    assert_eq!(c["cache_hit"], true);
    assert_eq!(
        files_on_disk(&work_tree(&fleet, "agent-again-t")),
        ["Cargo.toml", "tests/it.rs"]
    );
    fleet.shutdown().await;
}

/// A shallow copy, once released, must not be handed to a clone that did not ask for a
/// shallow one (or must be made whole first): a full clone has the whole history.
/// (A fetch from the mirror into a recycled shallow copy keeps its shallow boundary, so
/// such a copy must not be kept, or must be deepened.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_clone_never_gets_a_recycled_shallow_copy() {
    let mut fleet = git_fleet().workers(1).start().await;
    let (_bare, daemon) = remote_with_history(&fleet);
    let url = daemon.url("repo.git");

    let c = fleet
        .ok(
            "clone",
            clone_args(&url, "shallow", json!({"shallow": true})),
        )
        .await;
    fleet
        .ok("release", json!({"sandbox_id": c["sandbox_id"]}))
        .await;
    let c = fleet.ok("clone", clone_args(&url, "full", json!({}))).await;
    let work = work_tree(&fleet, "agent-full-t");
    assert_eq!(
        (
            git(&work, ["rev-parse", "--is-shallow-repository"]).unwrap(),
            git(&work, ["rev-list", "--count", "HEAD"]).unwrap()
        ),
        ("false".to_string(), "4".to_string()),
        "a full clone (cache_hit {}) has all four commits",
        c["cache_hit"]
    );
    fleet.shutdown().await;
}

/// Files written outside the sparse set of a sparse clone (a new one, and one the
/// repository tracks) are changes like any other: `write_files` writes them, `status` and
/// `diff` show them, and `push` commits them. The files not written stay as they were (the
/// absent ones are not deleted).
/// (Plain `git add -A -- .` refuses paths outside the sparse-checkout definition: "will
/// not be updated in the index"; `--sparse` stages them and still leaves the absent
/// skip-worktree files alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_outside_the_sparse_set_is_pushed() {
    let mut fleet = git_fleet().workers(1).start().await;
    let (bare, daemon) = remote_with_history(&fleet);
    let url = daemon.url("repo.git");
    let c = fleet
        .ok(
            "clone",
            clone_args(&url, "sparse", json!({"sparse_paths": ["src"]})),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let w = fleet
        .run(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "src/lib.rs", "content": "pub mod net;\n// touched\n"},
                {"path": "docs/new.md", "content": "outside the sparse set\n"},
                {"path": "README.md", "content": "tracked, outside the sparse set\n"},
            ]}),
        )
        .await;
    assert_eq!(
        w.status,
        gitfleet_client::JobStatus::Done,
        "a write outside the sparse set: {:?}",
        w.error
    );
    assert_eq!(w.result.unwrap()["written"], 3);
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(
        (&s["modified"], &s["untracked"]),
        (&json!(["README.md", "src/lib.rs"]), &json!(["docs/new.md"])),
        "{s}"
    );
    let d = fleet.ok("diff", json!({"sandbox_id": sandbox})).await;
    assert_eq!(d["files_changed"], 2, "{d}");
    assert!(
        d["diff"]
            .as_str()
            .unwrap()
            .contains("+tracked, outside the sparse set"),
        "{d}"
    );
    let p = fleet
        .run(
            "push",
            json!({"sandbox_id": sandbox, "message": "outside the sparse set"}),
        )
        .await;
    assert_eq!(
        p.status,
        gitfleet_client::JobStatus::Done,
        "the push of a sparse clone with a file outside its set: {:?}",
        p.error
    );
    assert_eq!(
        git(&bare, ["show", "agent-sparse-t:docs/new.md"]).unwrap(),
        "outside the sparse set"
    );
    assert_eq!(
        git(&bare, ["show", "agent-sparse-t:README.md"]).unwrap(),
        "tracked, outside the sparse set"
    );
    assert_eq!(
        git(
            &bare,
            ["diff", "--name-status", "main", "agent-sparse-t", "--"]
        )
        .unwrap(),
        "M\tREADME.md\nA\tdocs/new.md\nM\tsrc/lib.rs",
        "nothing else changed (the absent files were not deleted)"
    );
    fleet.shutdown().await;
}
