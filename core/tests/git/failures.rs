//! Real git failures come back with the right kind and a message naming the command.

use std::fs;
use std::path::{Path, PathBuf};

use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_core::git::RunOptions;
use gitfleet_testkit::GitDaemon;

use crate::support::{TestGit, closed_port};

async fn fails(t: &TestGit, cwd: &std::path::Path, args: &[&str]) -> JobError {
    t.git
        .run(cwd, args, t.everything())
        .await
        .expect_err("git should fail")
}

#[tokio::test]
async fn a_push_behind_the_remote_is_a_conflict() {
    let t = TestGit::new().await;
    t.repo_with_a_commit("origin-src").await;
    let root = t.tmp.path();
    t.ok(
        root,
        &[
            "clone",
            "--quiet",
            "--bare",
            "--",
            "origin-src",
            "origin.git",
        ],
    )
    .await;
    t.ok(root, &["clone", "--quiet", "--", "origin.git", "a"])
        .await;
    t.ok(root, &["clone", "--quiet", "--", "origin.git", "b"])
        .await;
    for (dir, file) in [("a", "a.txt"), ("b", "b.txt")] {
        let dir = t.path(dir);
        fs::write(dir.join(file), "x\n").unwrap();
        t.ok(&dir, &["add", "--", file]).await;
        t.ok(&dir, &["commit", "--quiet", "-m", file]).await;
    }
    t.ok(&t.path("a"), &["push", "--quiet", "origin", "main"])
        .await;
    let err = fails(&t, &t.path("b"), &["push", "--quiet", "origin", "main"]).await;
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert!(err.message.starts_with("git push failed: "), "{err}");
    assert!(err.message.contains("[rejected]"), "{err}");
    assert!(!err.message.contains("hint:"), "{err}");

    // A rebase onto the remote that touches the same lines is a conflict too.
    let (a, b) = (t.path("a"), t.path("b"));
    fs::write(a.join("README"), "from a\n").unwrap();
    t.ok(&a, &["commit", "--quiet", "-am", "a edits README"])
        .await;
    t.ok(&a, &["push", "--quiet", "origin", "main"]).await;
    fs::write(b.join("README"), "from b\n").unwrap();
    t.ok(&b, &["commit", "--quiet", "-am", "b edits README"])
        .await;
    let err = fails(&t, &b, &["pull", "--rebase", "--quiet", "origin", "main"]).await;
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert!(err.message.starts_with("git pull failed: "), "{err}");
}

#[tokio::test]
async fn a_missing_repository_branch_or_path_is_invalid_input() {
    let t = TestGit::new().await;
    let repo = t.repo_with_a_commit("repo").await;
    let root = t.tmp.path();

    let err = fails(&t, root, &["clone", "--quiet", "--", "no-such-repo", "x"]).await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(
        err.message.contains("'no-such-repo' does not exist"),
        "{err}"
    );

    fs::create_dir(t.path("plain-dir")).unwrap();
    let err = fails(&t, root, &["ls-remote", "--", "plain-dir"]).await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(
        err.message
            .contains("does not appear to be a git repository"),
        "{err}"
    );

    let err = fails(
        &t,
        root,
        &["clone", "--quiet", "--branch", "nope", "--", "repo", "y"],
    )
    .await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");

    let err = fails(
        &t,
        &repo,
        &["fetch", "--quiet", "--", "../repo", "refs/heads/nope"],
    )
    .await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.starts_with("git fetch failed: "), "{err}");

    let err = fails(&t, &repo, &["checkout", "--", "no-such-file"]).await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
}

/// Runs git in `cwd` with `input` on stdin; returns its trimmed stdout.
async fn with_stdin(t: &TestGit, cwd: &Path, args: &[&str], input: &str) -> String {
    let options = RunOptions {
        stdin: Some(input.as_bytes().to_vec()),
        ..RunOptions::default()
    };
    let out = t.git.run(cwd, args, options).await.unwrap();
    out.stdout_str().trim().to_string()
}

/// A bare repository `name` whose `main` holds `.GIT/config`, a tree git refuses to check
/// out (`.git` in any case), built object by object.
async fn hostile_repo(t: &TestGit, name: &str) -> PathBuf {
    let bare = t.path(name);
    t.ok(t.tmp.path(), &["init", "--quiet", "--bare", "--", name])
        .await;
    let blob = with_stdin(t, &bare, &["hash-object", "-w", "--stdin"], "[core]\n").await;
    let config = format!("100644 blob {blob}\tconfig\n");
    let sub = with_stdin(t, &bare, &["mktree"], &config).await;
    let dot_git = format!("040000 tree {sub}\t.GIT\n");
    let root = with_stdin(t, &bare, &["mktree"], &dot_git).await;
    let commit = with_stdin(
        t,
        &bare,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit-tree",
            &root,
        ],
        "hostile\n",
    )
    .await;
    t.ok(&bare, &["update-ref", "refs/heads/main", &commit])
        .await;
    t.ok(&bare, &["symbolic-ref", "HEAD", "refs/heads/main"])
        .await;
    bare
}

#[tokio::test]
async fn a_tree_git_refuses_to_check_out_is_invalid_input_and_never_retried() {
    let t = TestGit::new().await;
    hostile_repo(&t, "evil.git").await;
    let daemon = GitDaemon::start(t.tmp.path()).unwrap();
    let url = daemon.url("evil.git");
    let root = t.tmp.path();

    let err = t
        .fails_at(root, &["clone", "--quiet", "--", &url, "full"], &url)
        .await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(!err.kind.is_retryable());
    assert!(err.message.contains("invalid path '.GIT/config'"), "{err}");

    // The sandbox way: fetched without a checkout, then checked out.
    t.ok_at(
        root,
        &["clone", "--quiet", "--no-checkout", "--", &url, "wc"],
        &url,
    )
    .await;
    let err = fails(
        &t,
        &t.path("wc"),
        &["checkout", "-f", "-B", "main", "origin/main", "--"],
    )
    .await;
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.starts_with("git checkout failed: "), "{err}");
    assert!(err.message.contains("invalid path '.GIT/config'"), "{err}");
}

#[tokio::test]
async fn a_git_server_that_refuses_access_is_auth_and_never_retried() {
    let t = TestGit::new().await;
    t.repo_with_a_commit("repo").await;
    // An access hook that refuses every request, as a server's authorization would.
    let daemon = GitDaemon::start_with(t.tmp.path(), &["--access-hook=/bin/false"]).unwrap();
    let url = daemon.url("repo");
    let err = t
        .fails_at(t.tmp.path(), &["ls-remote", "--", &url], &url)
        .await;
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.kind.is_retryable());
    assert!(err.message.contains("service rejected"), "{err}");
}

#[tokio::test]
async fn an_unreachable_remote_is_a_network_failure() {
    let t = TestGit::new().await;
    let url = format!("http://127.0.0.1:{}/org/repo.git", closed_port());
    let err = t
        .fails_at(t.tmp.path(), &["ls-remote", "--", &url], &url)
        .await;
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    let url = format!("git://127.0.0.1:{}/repo.git", closed_port());
    let err = t
        .fails_at(t.tmp.path(), &["ls-remote", "--", &url], &url)
        .await;
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
}

#[tokio::test]
async fn anything_else_is_internal_and_still_says_what_failed() {
    let t = TestGit::new().await;
    let not_a_repo = t.path("plain");
    fs::create_dir(&not_a_repo).unwrap();
    let err = fails(&t, &not_a_repo, &["-C", ".", "status"]).await;
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert!(err.message.starts_with("git status failed: "), "{err}");
    assert!(err.message.contains("not a git repository"), "{err}");

    let err = fails(&t, &t.path("gone"), &["status"]).await;
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert!(err.message.contains("does not exist"), "{err}");
}
