//! What a repository, a URL or the worker's own environment cannot make git do.

use std::path::Path;
use std::process::Command;

use gitfleet_contract::ErrorKind;
use gitfleet_core::git::{Git, GitConfig, RunOptions};

use crate::support::{TestGit, script};

/// Plain git, the way a careless caller would run it: the repository's config applies.
fn unhardened_git(cwd: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("run git")
}

#[tokio::test]
async fn a_hostile_repository_config_never_runs_its_fsmonitor_or_hooks() {
    let t = TestGit::new().await;
    let repo = t.repo_with_a_commit("repo").await;
    let fsmonitor_marker = t.path("fsmonitor-ran");
    let hook_marker = t.path("hook-ran");
    let fsmonitor = t.path("fsmonitor.sh");
    script(
        &fsmonitor,
        &format!("touch '{}'", fsmonitor_marker.display()),
    );
    let hooks = t.path("hooks");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::create_dir_all(repo.join(".git/hooks")).unwrap();
    for dir in [hooks.clone(), repo.join(".git/hooks")] {
        for hook in [
            "pre-commit",
            "commit-msg",
            "post-commit",
            "post-checkout",
            "reference-transaction",
            "pre-push",
            "post-index-change",
        ] {
            script(
                &dir.join(hook),
                &format!("touch '{}'", hook_marker.display()),
            );
        }
    }
    let fsmonitor_str = fsmonitor.to_str().unwrap();
    let hooks_str = hooks.to_str().unwrap();
    t.ok(&repo, &["config", "core.fsmonitor", fsmonitor_str])
        .await;
    t.ok(&repo, &["config", "core.hooksPath", hooks_str]).await;

    std::fs::write(repo.join("file.txt"), "change\n").unwrap();
    for args in [
        &["status", "--porcelain"][..],
        &["add", "-A"],
        &["commit", "--quiet", "-m", "second"],
        &["checkout", "--quiet", "-b", "other"],
        &["diff", "HEAD~1"],
        &["log", "--oneline"],
    ] {
        t.ok(&repo, args).await;
    }
    assert!(!fsmonitor_marker.exists(), "the repository's fsmonitor ran");
    assert!(!hook_marker.exists(), "a repository hook ran");

    // The control: the same repository does run both under plain git, so the test above
    // would have caught a runner that let them through.
    let home = t.path("home");
    std::fs::write(repo.join("file.txt"), "again\n").unwrap();
    assert!(unhardened_git(&repo, &home, &["status"]).status.success());
    assert!(
        fsmonitor_marker.exists(),
        "control: plain git runs the fsmonitor"
    );
    let commit = unhardened_git(&repo, &home, &["commit", "-qam", "third"]);
    assert!(commit.status.success(), "{commit:?}");
    assert!(hook_marker.exists(), "control: plain git runs the hooks");
}

#[tokio::test]
async fn the_ext_transport_is_refused_even_when_the_repository_allows_it() {
    let t = TestGit::new().await;
    let repo = t.repo_with_a_commit("repo").await;
    t.ok(&repo, &["config", "protocol.ext.allow", "always"])
        .await;
    t.ok(&repo, &["config", "protocol.allow", "always"]).await;
    let marker = t.path("ext-ran");
    let url = format!("ext::sh -c touch% {}", marker.display());
    let err = t
        .git
        .run(&repo, &["ls-remote", "--", &url], RunOptions::default())
        .await
        .expect_err("ext:: must be refused");
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.starts_with("git ls-remote failed: "), "{err}");
    assert!(err.message.contains("transport 'ext' not allowed"), "{err}");
    assert!(!marker.exists(), "ext:: ran a command");
}

#[tokio::test]
async fn git_reads_only_the_controlled_global_config() {
    let t = TestGit::new().await;
    let global = t.git.config().global_config_path();
    assert!(global.starts_with(&t.git.config().home));
    let out = t
        .ok(t.tmp.path(), &["config", "--show-origin", "--list"])
        .await
        .stdout_str();
    for line in out.lines() {
        let origin = line.split('\t').next().unwrap();
        assert!(
            origin == "command line:" || origin == format!("file:{}", global.display()),
            "config from an unexpected place: {line}"
        );
    }
    for want in [
        "core.hookspath=/dev/null",
        "core.fsmonitor=false",
        "protocol.allow=never",
        "init.defaultbranch=main",
        "gc.auto=0",
        "credential.helper=",
        "http.followredirects=false",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    // A new repository starts on main and copies no sample hooks.
    t.ok(t.tmp.path(), &["init", "--quiet", "fresh"]).await;
    let head = std::fs::read_to_string(t.path("fresh/.git/HEAD")).unwrap();
    assert_eq!(head.trim(), "ref: refs/heads/main");
    assert!(!t.path("fresh/.git/hooks").exists());
    assert!(t.git.version().starts_with("git version "));
}

#[tokio::test]
async fn new_fails_when_the_git_binary_does_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = GitConfig::new(tmp.path().join("home"));
    config.git_bin = tmp.path().join("no-such-git");
    let err = Git::new(config).await.expect_err("no git there");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("no-such-git"), "{err}");

    let not_git = tmp.path().join("not-git");
    script(&not_git, "echo hello");
    let mut config = GitConfig::new(tmp.path().join("home"));
    config.git_bin = not_git;
    let err = Git::new(config).await.expect_err("not a git");
    assert!(err.message.contains("not a git version"), "{err}");
}

#[tokio::test]
async fn callers_cannot_smuggle_config_through_the_environment() {
    let t = TestGit::new().await;
    for name in [
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG",
        "GIT_SSH_COMMAND",
    ] {
        let options = RunOptions {
            env: vec![(name.into(), "x".into())],
            ..RunOptions::default()
        };
        let err = t
            .git
            .run(t.tmp.path(), &["version"], options)
            .await
            .expect_err(name);
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains(name), "{err}");
    }
    // Ordinary variables do reach git.
    let options = RunOptions {
        env: vec![("GIT_AUTHOR_NAME".into(), "Agent Smith".into())],
        ..RunOptions::default()
    };
    let ident = t
        .git
        .run(t.tmp.path(), &["var", "GIT_AUTHOR_IDENT"], options)
        .await
        .unwrap();
    assert!(ident.stdout_str().starts_with("Agent Smith <"), "{ident:?}");
}

#[tokio::test]
async fn the_worker_clones_its_own_local_mirror_with_file_remotes_off() {
    let t = TestGit::with(|c| c.allow_file_protocol = false).await;
    let repo = t.repo_with_a_commit("repo").await;
    t.ok(
        t.tmp.path(),
        &["clone", "--quiet", "--bare", "--", "repo", "mirror.git"],
    )
    .await;
    t.ok(
        t.tmp.path(),
        &[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            "--",
            "mirror.git",
            "sandbox",
        ],
    )
    .await;
    let head = t.ok(&t.path("sandbox"), &["rev-parse", "HEAD"]).await;
    let want = t.ok(&repo, &["rev-parse", "HEAD"]).await;
    assert_eq!(head.stdout, want.stdout);
}

/// Set by [`the_parent_environment_never_reaches_git`] when it runs this binary again.
const PROBE: &str = "GITFLEET_TEST_ENV_PROBE";

/// Runs this test binary again, only [`env_probe`], with a poisoned environment, and reads
/// what git saw. (Setting variables in this process would race the other tests.)
#[test]
fn the_parent_environment_never_reaches_git() {
    let tmp = tempfile::tempdir().unwrap();
    let evil = tmp.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    let evil_str = evil.to_str().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "hardening::env_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE, "1")
        .env("GIT_DIR", "/nonexistent/git-dir")
        .env("GIT_WORK_TREE", "/nonexistent/work-tree")
        .env("GIT_CONFIG_PARAMETERS", "'user.name'='leaked-parameters'")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "user.email")
        .env("GIT_CONFIG_VALUE_0", "leaked@count")
        .env("GIT_CONFIG_GLOBAL", evil.join("gitconfig"))
        .env("GIT_SSH_COMMAND", "leaked-ssh")
        .env("GIT_ASKPASS", "leaked-askpass")
        .env("GIT_TRACE", "1")
        .env("EDITOR", "leaked-editor")
        .env("SECRET_API_KEY", "leaked-secret")
        .env("HOME", evil_str)
        .env("XDG_CONFIG_HOME", evil_str)
        .output()
        .expect("rerun the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The probe ran (it is ignored: a filter that matched nothing would pass too).
    assert!(
        stdout.contains("test result: ok. 1 passed") && stdout.contains("=== end"),
        "the probe did not run:\n{stdout}"
    );
    let section = |name: &str| -> String {
        let start = format!("=== {name}\n");
        let from = stdout
            .find(&start)
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"));
        let body = &stdout[from + start.len()..];
        body[..body.find("=== ").unwrap_or(body.len())].to_string()
    };

    let env = section("env");
    assert!(!env.contains("leaked"), "parent environment leaked:\n{env}");
    assert!(
        !env.contains("nonexistent"),
        "GIT_DIR/GIT_WORK_TREE leaked:\n{env}"
    );
    assert!(!env.contains(evil_str), "parent HOME leaked:\n{env}");
    for want in [
        "GIT_TERMINAL_PROMPT=0",
        "GIT_CONFIG_NOSYSTEM=1",
        "LC_ALL=C",
        "HOME=/",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "{want} missing:\n{env}"
        );
    }
    let config = section("config");
    assert!(!config.contains("leaked"), "{config}");
    assert!(config.contains("user.name=gitfleet"), "{config}");
    assert!(section("git-dir").trim().ends_with("/repo/.git"));
    assert!(!section("stderr").contains("trace:"), "GIT_TRACE leaked");
}

/// Not a test on its own (ignored, so no run counts it as one passing): prints what git
/// sees, for the test above, which runs it with `--ignored --exact` and checks it ran.
#[tokio::test]
#[ignore = "run by the_parent_environment_never_reaches_git, in a poisoned environment"]
async fn env_probe() {
    assert!(
        std::env::var_os(PROBE).is_some(),
        "env_probe proves nothing alone: the_parent_environment_never_reaches_git runs it"
    );
    let t = TestGit::new().await;
    let repo = t.repo_with_a_commit("repo").await;
    let env = t.ok(&repo, &["-c", "alias.dumpenv=!env", "dumpenv"]).await;
    println!("=== env\n{}", env.stdout_str());
    let config = t.ok(&repo, &["config", "--list"]).await;
    println!("=== config\n{}", config.stdout_str());
    let dir = t.ok(&repo, &["rev-parse", "--absolute-git-dir"]).await;
    println!("=== git-dir\n{}", dir.stdout_str());
    println!("=== stderr\n{}{}", env.stderr, config.stderr);
    println!("=== end");
}
