//! A remote that can hold a push where a test wants it: a bare repository behind the
//! testkit's `git daemon`, with a server-side hook (it runs in the daemon's process group,
//! not in any worker) that records every push it sees and holds the first one until the
//! test lets it go. Where it holds decides what the pusher meets:
//! - [`Hold::BeforeRefUpdate`] (`pre-receive`): the branch has not moved yet; if it moves
//!   meanwhile, the held push is refused by git's own check of the old value ("cannot lock
//!   ref"), which a pusher reads as a concurrent push;
//! - [`Hold::AfterRefUpdate`] (`post-receive`): the push has landed, but git has not
//!   answered the pusher.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fixtures::{self, git};
use crate::{GitDaemon, eventually};

/// The branch every push in these tests goes to; it exists on the remote from the start.
pub const SHARED: &str = "shared";

/// The longest a hook holds a push if the test never lets it go (a failed test).
const HOLD_AT_MOST_SECS: u32 = 120;

/// Where the hook holds the first push.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hold {
    /// In `pre-receive`: before the branch moves.
    BeforeRefUpdate,
    /// In `post-receive`: after the branch moved, before git answers the pusher.
    AfterRefUpdate,
}

/// The remote: `repo.git` with a branch [`SHARED`] (a copy of `main`), served by `git daemon`.
pub struct HeldRemote {
    _tmp: tempfile::TempDir,
    pub bare: PathBuf,
    markers: PathBuf,
    pub daemon: GitDaemon,
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl HeldRemote {
    pub fn new(hold: Hold) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let remotes = tmp.path().join("remotes");
        let bare = fixtures::bare_repo(
            &remotes,
            "repo.git",
            &[
                ("README.md", "# held\n"),
                ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
            ],
        );
        git(&bare, ["branch", SHARED, "main"]).expect("create the shared branch");
        let markers = tmp.path().join("markers");
        std::fs::create_dir_all(&markers).expect("markers dir");
        let m = |name: &str| sh_quote(&markers.join(name));
        // `held` once the first push is being held, `let-go` from the test, `done` once
        // the hook has let it go (holding the time it did, in nanoseconds since the epoch).
        let script = format!(
            "#!/bin/sh\ncat >> {pushes}\n\
             if mkdir {first} 2>/dev/null; then\n  touch {held}\n  \
             i=0\n  while [ ! -e {let_go} ] && [ $i -lt {limit} ]; do sleep 0.05; i=$((i+1)); done\n  \
             date +%s%N > {done_tmp} && mv {done_tmp} {done}\nfi\nexit 0\n",
            pushes = m("pushes"),
            first = m("first"),
            held = m("held"),
            let_go = m("let-go"),
            done_tmp = m("done.tmp"),
            done = m("done"),
            limit = HOLD_AT_MOST_SECS * 20,
        );
        let name = match hold {
            Hold::BeforeRefUpdate => "pre-receive",
            Hold::AfterRefUpdate => "post-receive",
        };
        executable(&bare.join("hooks").join(name), &script);
        // The daemon's access hook notes when each request (a fetch's `upload-pack`, a
        // push's `receive-pack`) arrived.
        let access = tmp.path().join("access-hook");
        executable(
            &access,
            &format!(
                "#!/bin/sh\necho \"$(date +%s%N) $1\" >> {}\nexit 0\n",
                m("requests")
            ),
        );
        let daemon =
            GitDaemon::start_with(&remotes, &[&format!("--access-hook={}", access.display())])
                .expect("start git daemon");
        Self {
            _tmp: tmp,
            bare,
            markers,
            daemon,
        }
    }

    /// The repository's `git://` URL.
    pub fn url(&self) -> String {
        self.daemon.url("repo.git")
    }

    /// Waits until the first push is being held.
    pub async fn wait_until_held(&self, within: Duration, context: impl Fn() -> String) {
        let held = self.markers.join("held");
        eventually("a push is held at the remote", within, async || {
            if held.exists() {
                Ok(())
            } else {
                Err(context())
            }
        })
        .await
    }

    /// Lets the held push go on, and waits until the hook has ended.
    pub async fn let_go(&self) {
        std::fs::write(self.markers.join("let-go"), "").expect("write the let-go marker");
        let done = self.markers.join("done");
        eventually(
            "the remote's hook lets the held push go",
            Duration::from_secs(10),
            async || {
                if done.exists() {
                    Ok(())
                } else {
                    Err("still held".to_string())
                }
            },
        )
        .await
    }

    /// The pushes the hook saw, oldest first, as `(old, new, ref)`.
    pub fn pushes(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.markers.join("pushes"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut p = l.split(' ');
                let mut next = || p.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }

    /// The requests the remote served, oldest first, as (when it arrived by the remote's
    /// clock, the service: `upload-pack` for a fetch, `receive-pack` for a push).
    pub fn requests(&self) -> Vec<(std::time::SystemTime, String)> {
        std::fs::read_to_string(self.markers.join("requests"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (at, service) = l.split_once(' ').unwrap_or((l, ""));
                (nanos_since_epoch(at), service.to_string())
            })
            .collect()
    }

    /// When the hook let the held push go on, by the remote's clock (`None` while held).
    pub fn let_go_at(&self) -> Option<std::time::SystemTime> {
        std::fs::read_to_string(self.markers.join("done"))
            .ok()
            .map(|t| nanos_since_epoch(&t))
    }

    /// The commits on `SHARED`, newest first, as `(sha, message)`.
    pub fn commits(&self) -> Vec<(String, String)> {
        let out = git(&self.bare, ["log", "--format=%H%x00%B%x00", SHARED]).unwrap();
        out.split('\0')
            .map(str::trim)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter(|c| c.len() == 2 && !c[0].is_empty())
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    }

    /// The commits on `SHARED` whose message carries job `id`'s trailer.
    pub fn carrying(&self, id: &str) -> Vec<String> {
        let trailer = format!("Gitfleet-Job: {id}");
        self.commits()
            .into_iter()
            .filter(|(_, body)| body.lines().any(|l| l.trim() == trailer))
            .map(|(sha, _)| sha)
            .collect()
    }

    /// The commit [`SHARED`] is at.
    pub fn tip(&self) -> String {
        git(&self.bare, ["rev-parse", SHARED])
            .unwrap()
            .trim()
            .to_string()
    }
}

fn executable(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).expect("write a hook");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("make a hook executable");
}

/// A time as `date +%s%N` wrote it.
fn nanos_since_epoch(line: &str) -> std::time::SystemTime {
    let nanos: u64 = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("a time from the hook, {line:?}: {e}"));
    std::time::UNIX_EPOCH + Duration::from_nanos(nanos)
}

impl Drop for HeldRemote {
    fn drop(&mut self) {
        // A failed test may leave a push held: let it go before the daemon is killed.
        let _ = std::fs::write(self.markers.join("let-go"), "");
    }
}
