//! The bubblewrap jail end to end: a command configured in a sandbox runs when the `push`
//! op adds a file, and jailed it reads nothing outside that sandbox: not a file of the
//! host that the repository's own symlink points at, not another sandbox's file. With
//! the jail off, the same attack commits both to the remote (the control that shows the
//! attack is real).
//!
//! How the command got configured stands for any way one could: the test writes it into
//! the sandbox's `.git/config` on disk, which no job can do today (`write_files` refuses
//! paths under `.git`, the runner's `-c` flags keep hooks and fsmonitor off). The jail is
//! the layer that holds when one of those does not.

use std::os::unix::fs::symlink;

use gitfleet_core::git::JailMode;
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use serde_json::json;

use crate::support::{git_fleet, work_tree};

const SECRET: &str = "a secret of the host 9c4d";
const OTHER_SANDBOX: &str = "words only the other sandbox has";

/// Runs the attack on a fleet whose git runs as `jail` says; returns what the remote got
/// as `notes.txt` (the job wrote `mine`).
async fn what_a_configured_filter_commits(jail: JailMode) -> String {
    let mut fleet = git_fleet()
        .git_with(|s| s.jail = jail)
        .workers(1)
        .start()
        .await;
    let secret = fleet.tmp().join("host-secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();

    // A repository whose `.txt` files go through a `leak` filter, and whose tree holds a
    // symlink to the host's secret.
    let bare = fixtures::bare_repo(
        &fleet.remotes(),
        "leaky.git",
        &[
            (".gitattributes", "*.txt filter=leak\n"),
            ("notes.txt", "original\n"),
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
    symlink(&secret, author.join("leak")).unwrap();
    git(&author, ["add", "leak"]).unwrap();
    git(&author, ["commit", "--quiet", "-m", "a link"]).unwrap();
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("leaky.git");

    // Another agent's sandbox on the same worker, holding a file of its own.
    let other = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "other", "task_id": "t"}),
        )
        .await;
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": other["sandbox_id"],
                   "files": [{"path": "private.md", "content": format!("{OTHER_SANDBOX}\n")}]}),
        )
        .await;
    let other_file = work_tree(&fleet, "agent-other-t").join("private.md");

    let mine = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "mine", "task_id": "t"}),
        )
        .await;
    let work = work_tree(&fleet, "agent-mine-t");
    assert!(std::fs::symlink_metadata(work.join("leak")).is_ok_and(|m| m.file_type().is_symlink()));
    // The filter: what it prints is what `git add` stores. Through the repository's link,
    // and by the other sandbox's path.
    let config = work.join(".git/config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[filter \"leak\"]\n\tclean = cat leak '{}'\n",
        other_file.display()
    ));
    std::fs::write(&config, text).unwrap();

    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": mine["sandbox_id"],
                   "files": [{"path": "notes.txt", "content": "mine\n"}]}),
        )
        .await;
    let pushed = fleet
        .ok(
            "push",
            json!({"sandbox_id": mine["sandbox_id"], "message": "my notes"}),
        )
        .await;
    let commit = pushed["commit_sha"].as_str().unwrap().to_string();
    assert_eq!(
        git(&bare, ["rev-parse", "refs/heads/agent-mine-t"]).unwrap(),
        commit
    );
    let committed = git(&bare, ["cat-file", "-p", &format!("{commit}:notes.txt")]).unwrap();
    fleet.shutdown().await;
    committed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jailed_a_command_configured_in_a_sandbox_reads_nothing_outside_it() {
    let committed = what_a_configured_filter_commits(JailMode::Bwrap).await;
    // The filter found neither file, failed, and git stored the job's own content.
    assert_eq!(committed, "mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unjailed_the_same_command_commits_a_host_file_and_another_sandboxs_file() {
    let committed = what_a_configured_filter_commits(JailMode::Off).await;
    assert!(committed.contains(SECRET), "{committed}");
    assert!(committed.contains(OTHER_SANDBOX), "{committed}");
}
