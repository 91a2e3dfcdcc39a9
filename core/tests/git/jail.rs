//! The bubblewrap jail (`GITFLEET_SANDBOX_JAIL`), through the real runner: what a git
//! process, and anything it starts, can and cannot see. Each attack is also run with the
//! jail off, where it succeeds: that is what makes the jailed half worth anything.
//!
//! These tests need bubblewrap (`scripts/test` installs it): they ask for
//! [`JailMode::Bwrap`], which fails to start without it rather than passing unjailed.

use std::path::{Path, PathBuf};

use gitfleet_contract::JobError;
use gitfleet_core::git::{Git, GitConfig, GitOutput, JailMode, RunOptions, Sees};

use crate::support::{TestGit, script};

/// What the attacker is after, in a file outside the directory git works in.
const SECRET: &str = "the host's secret 5e1f";

/// A runner in `t`'s temp dir with its own HOME, jailed or not as `jail` says.
async fn runner(t: &TestGit, jail: JailMode) -> Git {
    let mut config = GitConfig::new(t.path(&format!("home-{jail}")));
    config.allow_file_protocol = true;
    config.jail = jail;
    let git = Git::new(config)
        .await
        .unwrap_or_else(|e| panic!("a runner with the jail {jail}: {e}"));
    assert_eq!(git.jailed(), jail == JailMode::Bwrap);
    git
}

/// `sh -c <command>` started by git (as an alias: any command git runs, a filter, a
/// textconv, ssh, runs the same way), in `cwd`, seeing what `sees` names.
async fn git_runs(git: &Git, cwd: &Path, command: &str, sees: Sees) -> Result<GitOutput, JobError> {
    let alias = format!("alias.attack=!{command}");
    let options = RunOptions {
        sees,
        ..RunOptions::default()
    };
    git.run(cwd, &["-c", &alias, "attack"], options).await
}

/// A sandbox-like working directory with one commit, and a secret file beside it (not
/// inside it), which a symlink in its working tree points at.
async fn sandbox_beside_a_secret(t: &TestGit) -> (PathBuf, PathBuf) {
    let sandbox = t.repo_with_a_commit("sandbox").await;
    let outside = t.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::os::unix::fs::symlink(&secret, sandbox.join("leak")).unwrap();
    (sandbox, secret)
}

#[tokio::test]
async fn a_git_process_in_the_jail_cannot_read_a_file_outside_its_sandbox() {
    let t = TestGit::new().await;
    let (sandbox, secret) = sandbox_beside_a_secret(&t).await;
    let jailed = runner(&t, JailMode::Bwrap).await;
    let plain = runner(&t, JailMode::Off).await;
    let cat = format!("cat '{}'", secret.display());

    // A command git starts reads the file by its path, or through the symlink the working
    // tree holds.
    for command in [cat.as_str(), "cat leak"] {
        let err = git_runs(&jailed, &sandbox, command, Sees::default())
            .await
            .expect_err("the secret is not there to read");
        assert!(!err.message.contains(SECRET), "{err}");
        assert!(err.message.contains("No such file or directory"), "{err}");
        // The control: unjailed, the same command reads it.
        let out = git_runs(&plain, &sandbox, command, Sees::default())
            .await
            .unwrap_or_else(|e| panic!("{command} unjailed: {e}"));
        assert!(out.stdout_str().contains(SECRET), "{command}");
    }

    // git itself follows the working tree's symlink (`hash-object` opens the path): jailed,
    // the link leads nowhere, so no object of the secret is written.
    let hash = |git: &Git| {
        let (git, sandbox) = (git.clone(), sandbox.clone());
        async move {
            git.run(
                &sandbox,
                &["hash-object", "-w", "--", "leak"],
                RunOptions::default(),
            )
            .await
        }
    };
    let err = hash(&jailed).await.expect_err("the link leads nowhere");
    assert!(err.message.contains("leak"), "{err}");
    let secret_blob = hash(&plain).await.expect("unjailed, git follows the link");
    let secret_blob = secret_blob.stdout_str().trim().to_string();
    // (Written by the control run just now: the jailed run had written nothing.)
    let shown = t
        .ok(&sandbox, &["cat-file", "-p", &secret_blob])
        .await
        .stdout_str();
    assert_eq!(shown.trim(), SECRET);
}

#[tokio::test]
async fn a_second_sandboxs_files_and_objects_are_invisible_to_the_first() {
    let t = TestGit::new().await;
    let first = t.repo_with_a_commit("first").await;
    let second = t.repo_with_a_commit("second").await;
    std::fs::write(second.join("private.txt"), "the second sandbox's words\n").unwrap();
    t.ok(&second, &["add", "--", "private.txt"]).await;
    t.ok(&second, &["commit", "--quiet", "-m", "private"]).await;
    let blob = t
        .ok(&second, &["rev-parse", "HEAD:private.txt"])
        .await
        .stdout_str()
        .trim()
        .to_string();
    // The first sandbox's alternates are made to point into the second's object store, as
    // a tampered `.git/objects/info/alternates` would.
    let second_objects = second.join(".git/objects");
    std::fs::write(
        first.join(".git/objects/info/alternates"),
        format!("{}\n", second_objects.display()),
    )
    .unwrap();
    let jailed = runner(&t, JailMode::Bwrap).await;
    let plain = runner(&t, JailMode::Off).await;
    let cat_file = |git: &Git, sees: Sees| {
        let (git, first, blob) = (git.clone(), first.clone(), blob.clone());
        async move {
            git.run(
                &first,
                &["cat-file", "-p", &blob],
                RunOptions {
                    sees,
                    ..Default::default()
                },
            )
            .await
        }
    };

    let err = cat_file(&jailed, Sees::default())
        .await
        .expect_err("jailed, the second sandbox's objects are not there");
    assert!(!err.message.contains("words"), "{err}");
    let listed = format!("ls '{}'", second.display());
    let err = git_runs(&jailed, &first, &listed, Sees::default())
        .await
        .expect_err("jailed, the second sandbox is not there");
    assert!(err.message.contains("No such file or directory"), "{err}");

    // The controls: unjailed, both reads work.
    let shown = cat_file(&plain, Sees::default()).await.expect("unjailed");
    assert_eq!(shown.stdout_str(), "the second sandbox's words\n");
    let out = git_runs(&plain, &first, &listed, Sees::default())
        .await
        .expect("unjailed");
    assert!(out.stdout_str().contains("private.txt"));

    // Named as read-only (as a sandbox names the mirror it borrows from), the store can
    // be read, and still not written: not by a command git starts, not by git itself.
    let read_only = Sees::default().and_read_only(&second_objects);
    let shown = cat_file(&jailed, read_only.clone())
        .await
        .expect("a store the call may read");
    assert_eq!(shown.stdout_str(), "the second sandbox's words\n");
    let planted = second_objects.join("planted");
    let touch = format!("touch '{}'", planted.display());
    let err = git_runs(&jailed, &first, &touch, read_only.clone())
        .await
        .expect_err("a read-only store cannot be written");
    assert!(err.message.contains("Read-only file system"), "{err}");
    assert!(!planted.exists());
    let written = jailed
        .run(
            &first,
            &["hash-object", "-w", "--stdin"],
            RunOptions {
                stdin: Some(b"new object\n".to_vec()),
                env: vec![("GIT_OBJECT_DIRECTORY".into(), second_objects.clone().into())],
                sees: read_only,
                ..Default::default()
            },
        )
        .await;
    assert!(written.is_err(), "{written:?}");
    // Named read-write, git may write it (a sandbox's commits go into the mirror).
    let sha = jailed
        .run(
            &first,
            &["hash-object", "-w", "--stdin"],
            RunOptions {
                stdin: Some(b"new object\n".to_vec()),
                env: vec![("GIT_OBJECT_DIRECTORY".into(), second_objects.clone().into())],
                sees: Sees::default().and_read_write(&second_objects),
                ..Default::default()
            },
        )
        .await
        .expect("a store the call may write");
    let sha = sha.stdout_str().trim().to_string();
    assert!(second_objects.join(&sha[..2]).join(&sha[2..]).is_file());
}

#[tokio::test]
async fn the_jail_shows_git_its_own_files_and_none_of_the_hosts_processes_homes_or_secrets() {
    let t = TestGit::new().await;
    let sandbox = t.repo_with_a_commit("sandbox").await;
    let jailed = runner(&t, JailMode::Bwrap).await;
    let run = async |command: &str| {
        git_runs(&jailed, &sandbox, command, Sees::default())
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"))
            .stdout_str()
    };

    // The root holds software, /etc's few files, /dev, /proc and a private /tmp: no /root,
    // /home, /var, /srv or anything else of the host.
    // (And the way down to the test's own directories, where TMPDIR is not under /tmp.)
    let temp_top = t.tmp.path().components().nth(1).unwrap();
    let temp_top = temp_top.as_os_str().to_string_lossy().into_owned();
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
        &temp_top,
    ];
    let root = run("ls -a /").await;
    for entry in root.lines().filter(|e| !matches!(*e, "." | "..")) {
        assert!(
            allowed.contains(&entry),
            "/{entry} is visible in the jail: {root}"
        );
    }
    let etc = run("ls -a /etc").await;
    for hidden in ["shadow", "gshadow", "sudoers", "ssh_host_rsa_key"] {
        assert!(!etc.lines().any(|e| e == hidden), "/etc/{hidden}: {etc}");
    }
    assert!(etc.lines().any(|e| e == "passwd"), "{etc}");
    // What TLS and name resolution read is there, as the host has it.
    for file in ["/etc/ssl/certs/ca-certificates.crt", "/etc/resolv.conf"] {
        if let Ok(host) = std::fs::read_to_string(file) {
            assert_eq!(run(&format!("cat {file}")).await, host, "{file}");
        }
    }
    // The host's /etc/passwd is not it: only the worker's own user, under a stand-in name.
    let passwd = run("cat /etc/passwd").await;
    assert_eq!(passwd.lines().count(), 1, "{passwd}");
    assert!(passwd.starts_with("gitfleet:x:"), "{passwd}");
    // /tmp is the jail's own: only the way down to the directories the call sees.
    let tmp_top = t
        .tmp
        .path()
        .strip_prefix(std::env::temp_dir())
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let tmp = run("ls -a /tmp").await;
    for entry in tmp.lines().filter(|e| !matches!(*e, "." | "..")) {
        assert_eq!(
            Some(entry.to_string()),
            tmp_top,
            "/tmp/{entry} is visible: {tmp}"
        );
    }
    // No process of the host is visible: not this test, not the worker.
    let own = std::env::current_exe().unwrap();
    let own = own.file_name().unwrap().to_string_lossy().into_owned();
    let cmdlines = run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '").await;
    assert!(cmdlines.contains("git"), "{cmdlines}");
    assert!(!cmdlines.contains(&own), "{cmdlines}");
    let pids = run("ls /proc | grep -c '^[0-9]'").await;
    let pids: usize = pids.trim().parse().unwrap();
    assert!(pids <= 6, "{pids} processes visible: {cmdlines}");
    // The environment is the runner's, not the test process's (cargo sets CARGO_* in it).
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let env = run("env").await;
    assert!(!env.contains("CARGO"), "{env}");
    // HOME (the controlled global config) is there to read, never to write.
    let home = run("cat \"$HOME/.gitconfig\" | head -1").await;
    assert!(home.contains("gitfleet"), "{home}");
    let err = git_runs(
        &jailed,
        &sandbox,
        "touch \"$HOME/.gitconfig\"",
        Sees::default(),
    )
    .await
    .expect_err("HOME is read-only");
    assert!(err.message.contains("Read-only file system"), "{err}");
    // The working directory is the call's own: written there, the file is on disk.
    run("touch written-in-the-jail").await;
    assert!(sandbox.join("written-in-the-jail").is_file());
}

#[tokio::test]
async fn a_jail_that_cannot_start_stops_the_runner_under_bwrap_and_is_skipped_with_auto() {
    let t = TestGit::new().await;
    let with = async |jail: JailMode, bwrap: &Path| {
        let mut config = GitConfig::new(t.path(&format!("home-{jail}-{}", ulid::Ulid::new())));
        config.jail = jail;
        config.bwrap_bin = bwrap.to_path_buf();
        Git::new(config).await
    };
    // No bubblewrap at all.
    let missing = t.path("no-such-bwrap");
    let err = with(JailMode::Bwrap, &missing)
        .await
        .expect_err("bwrap asked for, and missing");
    assert!(err.message.contains("GITFLEET_SANDBOX_JAIL=bwrap"), "{err}");
    assert!(err.message.contains("no-such-bwrap"), "{err}");
    assert!(err.message.contains("not found"), "{err}");
    let git = with(JailMode::Auto, &missing)
        .await
        .expect("auto falls back");
    assert!(!git.jailed());
    git.run(t.tmp.path(), &["--version"], RunOptions::default())
        .await
        .expect("unjailed git runs");

    // A bubblewrap that is there but cannot make namespaces (as in a container that
    // forbids them).
    let broken = t.path("broken-bwrap");
    script(
        &broken,
        "echo 'bwrap: No permissions to create new namespace' >&2; exit 1",
    );
    let err = with(JailMode::Bwrap, &broken)
        .await
        .expect_err("bwrap asked for, and broken");
    assert!(err.message.contains("does not run in the jail"), "{err}");
    assert!(err.message.contains("No permissions"), "{err}");
    assert!(!with(JailMode::Auto, &broken).await.unwrap().jailed());

    // Where it works (here), `auto` jails; `off` never does.
    assert!(
        with(JailMode::Auto, Path::new("bwrap"))
            .await
            .unwrap()
            .jailed()
    );
    assert!(
        !with(JailMode::Off, Path::new("bwrap"))
            .await
            .unwrap()
            .jailed()
    );
}
