//! [`GitDaemon`]: a real `git daemon` on 127.0.0.1 serving every bare repository under a
//! root directory over `git://`, with `receive-pack` (push) enabled.
//!
//! `git daemon` cannot listen on port 0, so a free port is picked (bind port 0, read it,
//! release it) and the start is retried on another port if the daemon fails to bind; the
//! daemon counts as ready once a process of its own holds a listening socket on the port.
//!
//! Nothing outlives its owner, however the owner ends:
//! - the daemon runs in a process group of its own (`sh` → `git` → `git-daemon` → one
//!   child per connection), and `Drop` kills the whole group and reaps its leader;
//! - a small `sh` watchdog leads that group and reads a pipe from this process: when this
//!   process dies without running `Drop` (a test killed by a timeout, a panic with
//!   `panic = "abort"`, SIGKILL), the pipe closes and the watchdog kills the group.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{free_port, kill_group};

/// How many ports are tried before giving up.
const START_ATTEMPTS: usize = 5;
/// How long one attempt waits for the daemon to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Runs `git daemon "$@"` in the background and kills the whole process group (itself
/// included) when the daemon exits or when its stdin (a pipe from the owner) closes.
const WATCHDOG: &str = r#"exec 3<&0
git daemon "$@" </dev/null &
daemon=$!
(read -r _ <&3; kill -KILL 0) &
wait "$daemon"
kill -KILL 0"#;

/// A running `git daemon`; stopped (with every process it started) on drop.
#[derive(Debug)]
pub struct GitDaemon {
    /// The watchdog `sh`, leader of the process group.
    child: Child,
    /// Closing it makes the watchdog kill the group.
    _lifeline: ChildStdin,
    log: File,
    port: u16,
    root: PathBuf,
}

impl GitDaemon {
    /// Starts `git daemon --reuseaddr --export-all --enable=receive-pack
    /// --base-path=<root> --listen=127.0.0.1 --port=<free port> --informative-errors <root>`
    /// and waits (bounded) until it accepts connections.
    pub fn start(root: &Path) -> anyhow::Result<GitDaemon> {
        Self::start_with(root, &[])
    }

    /// [`GitDaemon::start`] with more options for `git daemon` (e.g.
    /// `--access-hook=/bin/false`, a server that refuses every request).
    pub fn start_with(root: &Path, extra: &[&str]) -> anyhow::Result<GitDaemon> {
        let root = root
            .canonicalize()
            .with_context(|| format!("git daemon root {}", root.display()))?;
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port().context("picking a free port for git daemon")?;
            match Self::try_start(&root, port, extra) {
                Ok(daemon) => return Ok(daemon),
                Err(err) => errors.push(format!("port {port}: {err:#}")),
            }
        }
        bail!(
            "git daemon did not start after {START_ATTEMPTS} attempts: {}",
            errors.join("; ")
        )
    }

    fn try_start(root: &Path, port: u16, extra: &[&str]) -> anyhow::Result<GitDaemon> {
        let log = tempfile::tempfile().context("creating git daemon's log file")?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg(format!("--base-path={}", root.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--informative-errors")
            .args(extra)
            .arg(root)
            .env_clear()
            .envs(crate::fixtures::base_env())
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.try_clone()?))
            .process_group(0);
        let mut child = cmd.spawn().context("spawning git daemon")?;
        let lifeline = match child.stdin.take() {
            Some(stdin) => stdin,
            None => {
                kill_group(child.id());
                let _ = child.wait();
                bail!("no pipe to git daemon's watchdog");
            }
        };
        // From here on, Drop cleans up if readiness fails.
        let mut daemon = GitDaemon {
            child,
            _lifeline: lifeline,
            log,
            port,
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("git daemon exited with {status}: {}", read_log(&daemon.log));
            }
            // Listening is not enough: another process (say, a daemon of a parallel test that
            // was handed the same free port) may hold the port while ours fails to bind it.
            // Accept only a listening socket that one of our processes owns.
            // A socket in LISTEN state accepts connections (the kernel completes them), so
            // no probe connection is needed (one would leave "the remote end hung up" in
            // the daemon's log).
            if group_listens_on(daemon.child.id(), port) {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                bail!(
                    "git daemon did not accept connections within {READY_TIMEOUT:?}: {}",
                    read_log(&daemon.log)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `git://127.0.0.1:<port>/<repo>`, `repo` being a path relative to the root.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "git://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    /// The port the daemon listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The (canonical) directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the daemon wrote to stderr so far (its errors; it runs without `--verbose`).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// The process group of the daemon and everything it started (the id of the watchdog
    /// `sh` that leads the group).
    pub fn process_group(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(log: &File) -> String {
    let mut buf = vec![0u8; 1 << 20];
    let n = log.read_at(&mut buf, 0).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

/// Whether a process in group `pgid` owns a socket listening on 127.0.0.1:`port` (from
/// `/proc/net/tcp` and the group's `/proc/<pid>/fd`). Where `/proc` cannot be read, any
/// listener counts.
fn group_listens_on(pgid: u32, port: u16) -> bool {
    let Ok(tcp) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let wanted = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            (fields.len() > 9 && fields[1] == wanted && fields[3] == "0A")
                .then(|| format!("socket:[{}]", fields[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|entry| {
        let dir = entry.path();
        let in_group = std::fs::read_to_string(dir.join("stat")).is_ok_and(|stat| {
            // After the command name: state, ppid, pgrp.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .is_some_and(|pgrp| pgrp == pgid.to_string())
        });
        in_group
            && std::fs::read_dir(dir.join("fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_someone_else_is_not_taken_for_ready() {
        let root = tempfile::tempdir().unwrap();
        let squatter = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = squatter.local_addr().unwrap().port();
        let err = GitDaemon::try_start(root.path(), port, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("exited"), "{err:#}");
        // start() picks another port.
        let daemon = GitDaemon::start(root.path()).unwrap();
        assert_ne!(daemon.port(), port);
        assert!(group_listens_on(daemon.process_group(), daemon.port()));
        assert!(daemon.log().is_empty(), "{}", daemon.log());
        // git daemon answers a request for a repository it does not have with an ERR line.
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", daemon.port())).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = "git-upload-pack /nope.git\0host=127.0.0.1\0";
        let pkt = format!("{:04x}{request}", request.len() + 4);
        std::io::Write::write_all(&mut conn, pkt.as_bytes()).unwrap();
        let mut reply = String::new();
        let _ = std::io::Read::read_to_string(&mut conn, &mut reply);
        assert!(reply.contains("ERR"), "{reply:?}");
    }
}
