//! `GITFLEET_SANDBOX_JAIL` as an operator sees it: a worker says in its log whether its git
//! runs jailed, and one told to jail git where bubblewrap is missing does not start. A
//! machine without bubblewrap is a PATH that has git and nothing else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::processes::ProcessFleet;

const LOG_WAIT: Duration = Duration::from_secs(10);

/// A directory holding only a link to the git on this PATH: put on PATH, git is found and
/// `bwrap` is not.
fn path_with_git_only(fleet_tmp: &Path) -> PathBuf {
    let git = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH");
    let dir = fleet_tmp.join("bin-git-only");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&git, dir.join("git")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_jails_git_by_default_where_bubblewrap_works() {
    let fleet = ProcessFleet::new().await;
    let worker = fleet.spawn_worker(&[]).await;
    worker
        .wait_for_log("git runs jailed (bubblewrap)", LOG_WAIT)
        .await;
    assert!(!worker.log_text().contains("unjailed"));
    // And its jobs run: an echo, through the same worker.
    fleet.wait_until_registered(&worker.id).await;
    let job = fleet
        .submit(&worker.own_queue(), "echo", json!({"jailed": true}))
        .await;
    let record = fleet
        .wait_for_job(&job.job_id, LOG_WAIT, "the echo is done", |r| {
            r.result.is_some()
        })
        .await;
    assert_eq!(record.result.unwrap()["jailed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_the_jail_off_logs_that_it_runs_git_unjailed() {
    let fleet = ProcessFleet::new().await;
    let worker = fleet
        .spawn_worker(&[("GITFLEET_SANDBOX_JAIL", "off")])
        .await;
    worker
        .wait_for_log(
            "running git unjailed: the jail is off (GITFLEET_SANDBOX_JAIL=off)",
            LOG_WAIT,
        )
        .await;
    assert!(!worker.log_text().contains("git runs jailed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_a_machine_without_bubblewrap_logs_that_it_runs_git_unjailed() {
    let fleet = ProcessFleet::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let path = path_with_git_only(tmp.path());
    let worker = fleet
        .spawn_worker(&[("PATH", path.to_str().unwrap())])
        .await;
    worker
        .wait_for_log(
            "running git unjailed: bubblewrap cannot be used: bubblewrap (bwrap) is not found \
             on PATH",
            LOG_WAIT,
        )
        .await;
    assert!(!worker.log_text().contains("git runs jailed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_told_to_jail_git_where_bubblewrap_is_missing_does_not_start() {
    let fleet = ProcessFleet::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let path = path_with_git_only(tmp.path());
    let (status, log) = fleet
        .worker_that_exits(
            &[
                ("PATH", path.to_str().unwrap()),
                ("GITFLEET_SANDBOX_JAIL", "bwrap"),
            ],
            LOG_WAIT,
        )
        .await;
    assert!(!status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("GITFLEET_SANDBOX_JAIL=bwrap, but bubblewrap cannot be used"),
        "{log}"
    );
    // Nor does a setting it cannot read.
    let (status, log) = fleet
        .worker_that_exits(&[("GITFLEET_SANDBOX_JAIL", "sometimes")], LOG_WAIT)
        .await;
    assert!(!status.success(), "{status:?}\n{log}");
    assert!(log.contains("GITFLEET_SANDBOX_JAIL"), "{log}");
    assert!(log.contains("off, bwrap, auto"), "{log}");
}
