//! Time limits, output caps and stdin.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gitfleet_contract::ErrorKind;
use gitfleet_core::git::{JailMode, RunOptions};

use crate::support::{Server, TestGit, processes};

#[tokio::test]
async fn a_timeout_kills_git_and_every_helper_in_its_process_group() {
    // Unjailed: git leads the group. (Jailed, bwrap does, and git and its helpers are in a
    // session and PID namespace of the jail's own: the next test.)
    let t = TestGit::with(|c| c.jail = JailMode::Off).await;
    let server = Server::silent();
    let url = format!("http://127.0.0.1:{}/stuck.git", server.port);
    let run = {
        let (git, cwd, url) = (t.git.clone(), t.tmp.path().to_path_buf(), url.clone());
        tokio::spawn(async move {
            let options = RunOptions {
                timeout: Some(Duration::from_secs(1)),
                remote: Some(crate::support::remote_url(&url)),
                ..RunOptions::default()
            };
            let started = Instant::now();
            (
                git.run(&cwd, &["ls-remote", "--", &url], options).await,
                started.elapsed(),
            )
        })
    };

    // While it hangs: git and its `remote-http` helper, both in one group of their own.
    let needle = format!("127.0.0.1:{}", server.port);
    let mut group = Vec::new();
    while group.len() < 2 && !run.is_finished() {
        group = processes()
            .into_iter()
            .filter(|p| p.cmdline.contains(&needle) && p.is_alive())
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        group.len() >= 2,
        "expected git and its helper, saw {group:?}"
    );
    let pgid = group[0].pgid;
    assert!(group.iter().all(|p| p.pgid == pgid), "{group:?}");
    assert!(
        group.iter().any(|p| p.pid == pgid),
        "git leads its own group: {group:?}"
    );
    assert_ne!(
        pgid,
        own_pgid(),
        "git must not share the test's process group"
    );

    let (result, elapsed) = run.await.unwrap();
    let err = result.expect_err("the remote never answers");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.message.contains("git ls-remote"), "{err}");
    assert!(err.message.contains("1s"), "{err}");
    // A liveness bound, not a speed claim: the default limit (GITFLEET_GIT_TIMEOUT_SECS) is
    // 300 s, so ending well within 30 s shows the 1 s limit applied.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");

    // Nothing of that group is left running (zombies waiting for init do not count).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<_> = processes()
            .into_iter()
            .filter(|p| p.pgid == pgid && p.is_alive())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the timeout: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_timeout_kills_the_whole_jail_git_and_every_helper_in_it() {
    let t = TestGit::with(|c| c.jail = JailMode::Bwrap).await;
    let server = Server::silent();
    let url = format!("http://127.0.0.1:{}/stuck.git", server.port);
    let run = {
        let (git, cwd, url) = (t.git.clone(), t.tmp.path().to_path_buf(), url.clone());
        tokio::spawn(async move {
            let options = RunOptions {
                timeout: Some(Duration::from_secs(1)),
                remote: Some(crate::support::remote_url(&url)),
                ..RunOptions::default()
            };
            git.run(&cwd, &["ls-remote", "--", &url], options).await
        })
    };

    // While it hangs: bwrap (leading a group of its own), the jail's init, git and its
    // `remote-http` helper.
    let needle = format!("127.0.0.1:{}", server.port);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|p: &crate::support::Proc| p.cmdline.contains("remote-http"))
        && !run.is_finished()
    {
        seen = processes()
            .into_iter()
            .filter(|p| p.cmdline.contains(&needle) && p.is_alive())
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        seen.iter().any(|p| p.cmdline.contains("remote-http")),
        "expected git's helper in the jail, saw {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|p| p.cmdline.starts_with("bwrap") || p.cmdline.contains("/bwrap ")),
        "git runs under bwrap: {seen:?}"
    );
    assert!(seen.iter().all(|p| p.pgid != own_pgid()), "{seen:?}");

    let err = run.await.unwrap().expect_err("the remote never answers");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");

    // Every process of the jail is gone: killing bwrap's group takes the jail's init with
    // it (--die-with-parent), and with it the whole PID namespace.
    let pids: Vec<i32> = seen.iter().map(|p| p.pid).collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<_> = processes()
            .into_iter()
            .filter(|p| pids.contains(&p.pid) && p.cmdline.contains(&needle) && p.is_alive())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the timeout: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test process's own group, read from /proc (no libc needed).
fn own_pgid() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(2).unwrap().parse().unwrap()
}

/// A fast-import stream of `n` commits on `main`, each changing one file.
fn history(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        let message = format!("commit number {i}\n");
        let content = format!("{i}\n");
        write!(
            s,
            "commit refs/heads/main\ncommitter T <t@t> {} +0000\ndata {}\n{message}\
             M 644 inline file.txt\ndata {}\n{content}\n",
            1_700_000_000 + i,
            message.len(),
            content.len()
        )
        .unwrap();
    }
    s.into_bytes()
}

#[tokio::test]
async fn output_past_max_output_is_dropped_and_flagged_without_blocking_git() {
    let t = TestGit::with(|c| c.max_output = 1000).await;
    let repo = t.path("repo");
    t.ok(t.tmp.path(), &["init", "--quiet", "--", "repo"]).await;
    // Stdin bigger than a pipe buffer, too.
    let stream = history(1000);
    assert!(stream.len() > 64 * 1024);
    let imported = t
        .git
        .run(
            &repo,
            &["fast-import", "--quiet"],
            RunOptions {
                stdin: Some(stream),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 0);

    // `git log` writes far more than a pipe holds; git must still finish, not hang. Output
    // that is shown, not parsed, may come back cut when the caller says so.
    let log = t
        .git
        .run(
            &repo,
            &["log", "--format=%H %s"],
            RunOptions {
                allow_truncated: true,
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(log.truncated);
    assert_eq!(log.stdout.len(), 1000);
    let first = log.stdout_str().lines().next().unwrap().to_string();
    assert!(first.ends_with(" commit number 999"), "{first}");

    let count = t.ok(&repo, &["rev-list", "--count", "main"]).await;
    assert!(!count.truncated);
    assert_eq!(count.stdout_str().trim(), "1000");
}

#[tokio::test]
async fn a_listing_cut_at_max_output_is_an_internal_error_naming_the_command_never_a_short_list() {
    let t = TestGit::with(|c| c.max_output = 1000).await;
    let repo = t.path("repo");
    t.ok(t.tmp.path(), &["init", "--quiet", "--", "repo"]).await;
    let imported = t
        .git
        .run(
            &repo,
            &["fast-import", "--quiet"],
            RunOptions {
                stdin: Some(history(100)),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 0);

    // Each listing below is longer than 1000 bytes: what a parser would read as the whole
    // history or tree is refused instead.
    for (args, command) in [
        (&["rev-list", "main"][..], "git rev-list"),
        (
            &["cat-file", "--batch-all-objects", "--batch-check"],
            "git cat-file",
        ),
        (&["log", "--format=%H %s"], "git log"),
    ] {
        let err = t
            .git
            .run(&repo, args, RunOptions::default())
            .await
            .expect_err("a cut listing is an error");
        assert_eq!(err.kind, ErrorKind::Internal, "{err}");
        assert!(err.message.starts_with(command), "{err}");
        assert!(err.message.contains("cut at 1000 bytes"), "{err}");
    }
    // Even when a failure is let through as output.
    let err = t
        .git
        .run(
            &repo,
            &["rev-list", "main"],
            RunOptions {
                allow_failure: true,
                ..RunOptions::default()
            },
        )
        .await
        .expect_err("still an error");
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");

    // Output that fits is whole, and not flagged.
    let count = t.ok(&repo, &["rev-list", "--count", "main"]).await;
    assert!(!count.truncated);
    assert_eq!(count.stdout_str().trim(), "100");
}

#[tokio::test]
async fn stdin_reaches_git() {
    let t = TestGit::new().await;
    let out = t
        .git
        .run(
            t.tmp.path(),
            &["hash-object", "--stdin"],
            RunOptions {
                stdin: Some(b"hello\n".to_vec()),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        out.stdout_str().trim(),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    assert!(!out.truncated);
}

#[tokio::test]
async fn a_failure_comes_back_as_output_when_allowed() {
    let t = TestGit::new().await;
    let repo = t.repo_with_a_commit("repo").await;
    let out = t
        .git
        .run(
            &repo,
            &["rev-parse", "--verify", "--quiet", "refs/heads/nope"],
            RunOptions {
                allow_failure: true,
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.status, 1);
    assert!(out.stdout.is_empty());
}
