//! A worker killed while its push is in flight: the job is finished by another worker and
//! its commit is on the remote exactly once (DESIGN.md, "Push protocol": the
//! `Gitfleet-Job: <job id>` trailer lets a re-run find a commit that already landed).
//!
//! The remote is a bare repository behind the testkit's `git daemon`, with a server-side
//! `pre-receive` hook (it runs in the test's daemon, not in the worker) that records each
//! push it sees, then waits until the test releases it, so the push is surely in flight
//! when worker A is killed. The test releases it only after A is dead, and starts worker B
//! only once the hook has finished with A's push. Two variants:
//! - the hook accepts: A's `git push` runs in a process group of its own, so it outlives A's
//!   SIGKILL and lands after A died; B must find that commit by its trailer and not push
//!   another;
//! - the hook rejects the first push: A's commit never lands; B must push it, once.
//!
//! What the timing looks like: locks are listed under their owner, so recovering A (after
//! `GITFLEET_DEAD_AFTER_SECS`) frees its `(repo, branch)` lock in the same step that gives
//! its job back; and a re-run looks for its trailer on the remote before it waits for a
//! lock. B finishes the job within seconds of A being found dead, even with short retry
//! delays (the last test).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gitfleet_client::{JobRecord, JobStatus};
use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{GitDaemon, eventually};
use serde_json::json;

use crate::processes::ProcessFleet;

/// The longest the hook waits to be released if the test never does (a failed test).
const HOOK_WAITS_AT_MOST_SECS: u32 = 120;

/// Fast death detection, so the test spends its time on the push, not on waiting for it.
const WORKER_ENV: [(&str, &str); 2] = [
    ("GITFLEET_HEARTBEAT_SECS", "1"),
    ("GITFLEET_DEAD_AFTER_SECS", "4"),
];

/// The branch every push goes to; it exists on the remote from the start.
const SHARED: &str = "shared";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hook {
    /// Waits to be released, then accepts every push.
    Accepts,
    /// Waits to be released, then rejects the first push it sees and accepts the later ones.
    RejectsOnce,
}

/// The remote: a bare repository whose `pre-receive` hook waits for the test, served by
/// `git daemon`.
struct Remote {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    /// Touched by the hook as soon as it starts: a push is in flight.
    started: PathBuf,
    /// Made by the test: the hook goes on (and every later run of it does not wait).
    release: PathBuf,
    /// Touched by the hook when it has finished with the first push.
    finished: PathBuf,
    /// One `<old> <new> <ref>` line per push the hook saw (accepted or not).
    pushes: PathBuf,
    daemon: GitDaemon,
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl Remote {
    fn new(hook: Hook) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let remotes = tmp.path().join("remotes");
        let bare = fixtures::bare_repo(
            &remotes,
            "repo.git",
            &[
                ("README.md", "# crash\n"),
                ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
            ],
        );
        git(&bare, ["branch", SHARED, "main"]).expect("create the shared branch");
        let markers = tmp.path().join("markers");
        std::fs::create_dir_all(&markers).expect("markers dir");
        let started = markers.join("hook-started");
        let pushes = markers.join("pushes");
        let rejected = markers.join("rejected-once");
        let release = markers.join("release");
        let finished = markers.join("hook-finished");
        let reject = match hook {
            Hook::Accepts => String::new(),
            Hook::RejectsOnce => format!(
                "if [ ! -e {r} ]; then\n  touch {r}\n  echo 'rejected once by the test hook' >&2\n  exit 1\nfi\n",
                r = sh_quote(&rejected)
            ),
        };
        // `finished` is touched before the hook's verdict: for a rejection git answers the
        // pusher at once; an accepted push has still to move the branch (the test waits
        // for that on the branch itself).
        let script = format!(
            "#!/bin/sh\ntouch {started}\ncat >> {pushes}\ni=0\n\
             while [ ! -e {release} ] && [ $i -lt {limit} ]; do sleep 0.05; i=$((i+1)); done\n\
             touch {finished}\n{reject}exit 0\n",
            started = sh_quote(&started),
            pushes = sh_quote(&pushes),
            release = sh_quote(&release),
            finished = sh_quote(&finished),
            limit = HOOK_WAITS_AT_MOST_SECS * 20,
        );
        let hook_path = bare.join("hooks").join("pre-receive");
        std::fs::write(&hook_path, script).expect("write the hook");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o755))
                .expect("make the hook executable");
        }
        let daemon = GitDaemon::start(&remotes).expect("start git daemon");
        Self {
            _tmp: tmp,
            bare,
            started,
            release,
            finished,
            pushes,
            daemon,
        }
    }

    /// Lets the held push go on.
    fn release(&self) {
        std::fs::write(&self.release, "").expect("write the release marker");
    }

    /// The pushes the hook saw, oldest first, as `(old, new, ref)`.
    fn pushes(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.pushes)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut p = l.split(' ');
                let mut next = || p.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // A failed test may leave the hook waiting: release it before the daemon goes.
        let _ = std::fs::write(&self.release, "");
    }
}

async fn a_worker_killed_mid_push(hook: Hook, extra_env: &[(&str, &str)]) {
    let env: Vec<(&str, &str)> = WORKER_ENV.iter().chain(extra_env).copied().collect();
    let remote = Remote::new(hook);
    let url = remote.daemon.url("repo.git");
    let base = fixtures::commit_count(&remote.bare, SHARED);
    let base_tip = git(&remote.bare, ["rev-parse", SHARED]).unwrap();
    let q = ProcessFleet::new().await;
    let mut a = q.spawn_worker(&env).await;
    q.wait_until_registered(&a.id).await;

    let job = q
        .submit(
            "jobs",
            "change",
            json!({
                "repo_url": url, "agent_id": "crash", "task_id": "t1",
                "files": [{"path": "agents/crash.txt", "content": "written once\n"}],
                "message": "work that must land once", "target_branch": SHARED,
            }),
        )
        .await;
    let id = job.job_id;
    let trailer = format!("Gitfleet-Job: {id}");

    eventually(
        "A's push reaches the remote's pre-receive hook",
        Duration::from_secs(30),
        async || {
            if remote.started.exists() {
                Ok(())
            } else {
                Err(format!("no push yet; {}", a.log_text()))
            }
        },
    )
    .await;
    let held = q.job(&id).await.expect("the job has a record");
    assert_eq!(held.status, JobStatus::Running, "{held:?}");
    assert_eq!(held.worker.as_deref(), Some(a.id.as_str()), "{held:?}");
    a.sigkill();
    let killed = Instant::now();

    // Only now, with A dead, does A's push go on: it lands (or is rejected) after A died.
    // B starts once the remote has finished with it, so B's run meets the outcome.
    remote.release();
    eventually(
        "the remote finished with A's push",
        Duration::from_secs(30),
        async || {
            let landed = git(&remote.bare, ["rev-parse", SHARED]).unwrap() != base_tip;
            match hook {
                _ if !remote.finished.exists() => Err("the hook runs".to_string()),
                Hook::Accepts if !landed => Err("the branch has not moved yet".to_string()),
                _ => Ok(()),
            }
        },
    )
    .await;
    let b = q.spawn_worker(&env).await;

    let record: JobRecord = q
        .wait_for_job(&id, Duration::from_secs(120), "the change finished", |r| {
            r.status.is_final()
        })
        .await;
    eprintln!(
        "{hook:?}: finished {:.1} s after A was killed, attempts {} of {}",
        killed.elapsed().as_secs_f64(),
        record.attempts,
        record.max_attempts
    );
    assert_eq!(
        record.status,
        JobStatus::Done,
        "{record:?}\n{}\n{}",
        b.log_text(),
        remote.daemon.log()
    );
    assert_eq!(
        record.worker.as_deref(),
        Some(b.id.as_str()),
        "finished by B: {record:?}"
    );
    // A's run was the first attempt (a crash gives nothing back, so it counts), B's the
    // second.
    assert_eq!(record.attempts, 2, "{record:?}");
    let result = record.result.clone().expect("a done job has a result");
    assert_eq!(result["branch"], SHARED, "{result}");
    // B's pushes: none (it found A's commit), or one that went through at once.
    assert_eq!(result["attempts"], 1, "{result}");
    let sha = result["commit_sha"]
        .as_str()
        .unwrap_or_else(|| panic!("no commit_sha in {result}"))
        .to_string();

    // Exactly one commit on the branch carries the job's trailer, and it is B's answer.
    let bodies = git(&remote.bare, ["log", "--format=%B", SHARED]).unwrap();
    assert_eq!(
        bodies.matches(trailer.as_str()).count(),
        1,
        "one commit with {trailer:?} on {SHARED}:\n{bodies}"
    );
    let grep = format!("--grep={trailer}");
    let carrying = git(&remote.bare, ["log", "-F", &grep, "--format=%H", SHARED]).unwrap();
    assert_eq!(
        carrying.trim(),
        sha,
        "B's commit_sha is the commit on the remote"
    );
    let tip = git(&remote.bare, ["rev-parse", SHARED]).unwrap();
    assert_eq!(tip.trim(), sha, "and it is the branch's tip");
    assert_eq!(
        fixtures::commit_count(&remote.bare, SHARED),
        base + 1,
        "one commit was added, no more"
    );
    let content = git(
        &remote.bare,
        ["show", &format!("{SHARED}:agents/crash.txt")],
    )
    .unwrap();
    assert_eq!(content, "written once");

    // The branch only moved forward: created, then one fast-forward.
    let reflog = fixtures::reflog(&remote.bare, SHARED);
    assert_eq!(reflog.len(), 2, "created, then one update: {reflog:#?}");
    for line in reflog.iter().skip(1) {
        let mut parts = line.split(' ');
        let (old, new) = (parts.next().unwrap(), parts.next().unwrap());
        let ff = std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", old, new])
            .current_dir(&remote.bare)
            .status()
            .unwrap();
        assert!(ff.success(), "{old} -> {new} was not a fast-forward");
    }

    // Who pushed what: the hook saw A's push, and B's only when A's did not land.
    let pushes = remote.pushes();
    let branch_ref = format!("refs/heads/{SHARED}");
    assert!(
        pushes.iter().all(|(_, _, r)| *r == branch_ref),
        "{pushes:?}"
    );
    match hook {
        Hook::Accepts => {
            assert_eq!(
                pushes.len(),
                1,
                "A's push outlived A and landed; B found it by its trailer and did not push \
                 again: {pushes:?}"
            );
            assert_eq!(pushes[0].1, sha, "the commit that landed is A's push");
        }
        Hook::RejectsOnce => {
            assert_eq!(
                pushes.len(),
                2,
                "A's push was rejected; B pushed once: {pushes:?}"
            );
            assert_eq!(pushes[1].1, sha, "the commit that landed is B's push");
        }
    }
}

/// Variant (a): the hook accepts A's push after A died.
#[tokio::test]
async fn a_worker_killed_mid_push_leaves_the_commit_on_the_remote_exactly_once() {
    a_worker_killed_mid_push(Hook::Accepts, &[]).await;
}

/// Variant (b): the hook rejects A's push, so only B's lands.
#[tokio::test]
async fn a_worker_killed_mid_push_that_was_rejected_has_it_pushed_once_by_another() {
    a_worker_killed_mid_push(Hook::RejectsOnce, &[]).await;
}

/// With retry delays from 100 ms a re-run has little time: it must not spend it waiting for
/// a lock its dead predecessor held (that lock is freed when the predecessor is recovered)
/// nor report dead a job whose commit landed.
#[tokio::test]
async fn a_rerun_after_a_crash_mid_push_does_not_die_waiting_for_the_dead_workers_lock() {
    a_worker_killed_mid_push(Hook::Accepts, &[("GITFLEET_RETRY_BASE_MS", "100")]).await;
}
