//! Shared plumbing for the git runner tests: a runner with its own HOME in a temp dir, a
//! loopback server that never answers, and a look at /proc for process groups.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gitfleet_core::git::{Git, GitConfig, GitOutput, RunOptions, Sees};
use tempfile::TempDir;

/// Longest any loopback server in these tests lives, whatever happens to the test.
const SERVER_LIFETIME: Duration = Duration::from_secs(30);

/// A runner whose HOME and scratch space live in a temp dir deleted afterwards.
pub struct TestGit {
    pub git: Git,
    pub tmp: TempDir,
}

impl TestGit {
    /// File remotes allowed (tests use local repositories), default limits, the testkit's
    /// servers on 127.0.0.1 allowed by the egress policy.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(change: impl FnOnce(&mut GitConfig)) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = GitConfig::new(tmp.path().join("home"));
        config.allow_file_protocol = true;
        config.timeout = Duration::from_secs(60);
        config.egress = gitfleet_testkit::test_egress();
        change(&mut config);
        let git = Git::new(config).await.expect("git runs");
        Self { git, tmp }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Options that let a jailed call see the whole temporary directory: the test's
    /// repositories are each other's remotes.
    pub fn everything(&self) -> RunOptions {
        RunOptions {
            sees: Sees::default().and_read_write(self.tmp.path()),
            ..RunOptions::default()
        }
    }

    /// Runs git (seeing the whole temporary directory) and expects success.
    /// Runs git against the network remote `url` (named as the call's remote, as every
    /// op names it) and expects a failure.
    pub async fn fails_at(
        &self,
        cwd: &Path,
        args: &[&str],
        url: &str,
    ) -> gitfleet_contract::JobError {
        self.git
            .run(
                cwd,
                args,
                RunOptions {
                    remote: Some(remote_url(url)),
                    ..RunOptions::default()
                },
            )
            .await
            .expect_err("git should fail")
    }

    /// Runs git against the network remote `url` and expects success.
    pub async fn ok_at(&self, cwd: &Path, args: &[&str], url: &str) -> GitOutput {
        self.git
            .run(
                cwd,
                args,
                RunOptions {
                    remote: Some(remote_url(url)),
                    ..RunOptions::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("git {args:?} in {}: {e}", cwd.display()))
    }

    /// Runs git and expects success.
    pub async fn ok(&self, cwd: &Path, args: &[&str]) -> GitOutput {
        self.git
            .run(cwd, args, self.everything())
            .await
            .unwrap_or_else(|e| panic!("git {args:?} in {}: {e}", cwd.display()))
    }

    /// A new repository with one commit on `main`.
    pub async fn repo_with_a_commit(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        self.ok(self.tmp.path(), &["init", "--quiet", "--", name])
            .await;
        std::fs::write(dir.join("README"), "hello\n").unwrap();
        self.ok(&dir, &["add", "--", "README"]).await;
        self.ok(&dir, &["commit", "--quiet", "-m", "first"]).await;
        dir
    }
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A loopback server running on a thread until dropped (or [`SERVER_LIFETIME`]) that
/// accepts connections and never answers them: a remote that hangs. (Servers that answer and
/// record what they were sent are the testkit's `RecordingServer`.)
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn silent() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < SERVER_LIFETIME {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub pgid: i32,
    pub state: char,
    pub cmdline: String,
}

impl Proc {
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Every process on the machine that /proc lets us read.
pub fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let _ppid = fields.next()?;
            let pgid = fields.next()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            Some(Proc {
                pid,
                pgid,
                state,
                cmdline,
            })
        })
        .collect()
}

/// `url` as the remote a call names (as the ops name their repository's).
pub fn remote_url(url: &str) -> gitfleet_contract::rules::RepoUrl {
    gitfleet_contract::rules::repo_url("remote", url, true).unwrap_or_else(|e| panic!("{url}: {e}"))
}
