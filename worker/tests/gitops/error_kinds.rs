//! The error kinds git's failures become, through a real worker and into the record: a
//! remote nobody listens on is `network`, one that never answers is `timeout` (both retried
//! as the job allows), a sandbox git cannot read is `internal` and leaves the registry's row
//! in `error`; and a sandbox is `in_use` in the registry while an op runs on it.

use std::net::TcpListener;
use std::time::Duration;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobStatus};
use gitfleet_store::{JobHistory, SandboxRow, Store};
use gitfleet_testkit::held_remote::{HeldRemote, Hold, SHARED};
use gitfleet_testkit::{Fleet, eventually};
use serde_json::json;

use crate::support::{git_fleet, sample_repo, work_tree};

/// Two runs at most: enough to see a retry, and quick.
fn two_attempts() -> EnqueueOptions {
    EnqueueOptions {
        max_attempts: Some(2),
        ..Default::default()
    }
}

/// The job's history once its row is final (`done` or `dead`).
async fn final_history(store: &Store, job_id: &str) -> JobHistory {
    eventually(
        format!("the final row of {job_id}"),
        Duration::from_secs(30),
        async || {
            store
                .job_history(job_id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|h| {
                    (h.job.status == "dead" || h.job.status == "done")
                        && h.runs.iter().all(|r| r.outcome != "running")
                })
                .ok_or_else(|| "not final yet".to_string())
        },
    )
    .await
}

/// Sandbox `id`'s registry row once `holds` says it is the one awaited.
async fn sandbox_row(store: &Store, id: &str, holds: impl Fn(&SandboxRow) -> bool) -> SandboxRow {
    eventually(
        format!("sandbox {id}'s row"),
        Duration::from_secs(30),
        async || {
            let rows = store.sandboxes(100).await.map_err(|e| e.to_string())?;
            let row = rows.into_iter().find(|r| r.sandbox_id == id);
            match row {
                Some(row) if holds(&row) => Ok(row),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// A clone from `url` is dead after both its runs failed with `kind`; each run's failure
/// is recorded as it was, the first one as a retry.
async fn clone_fails_twice_with(fleet: &Fleet, url: &str, kind: ErrorKind, says: &str) {
    let job = fleet
        .submit(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
            &two_attempts(),
        )
        .await;
    let r = fleet
        .client()
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.attempts), (JobStatus::Dead, 2), "{url}: {r:?}");
    let e = r.error.unwrap();
    assert_eq!(e.kind, kind, "{url}: {e:?}");
    assert!(e.message.contains(says), "{url}: {e:?}");
    let h = final_history(fleet.store(), &job.job_id).await;
    assert_eq!(
        (h.job.error_kind.as_deref(), h.job.attempts),
        (Some(kind.as_str()), 2),
        "{h:?}"
    );
    let runs: Vec<_> = h
        .runs
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str(), r.error_kind.as_deref()))
        .collect();
    assert_eq!(
        runs,
        [
            (1, "retry", Some(kind.as_str())),
            (2, "dead", Some(kind.as_str()))
        ],
        "{url}"
    );
}

/// A closed port is `network` (git: "Failed to connect"), retried; a port whose listener
/// accepts connections and never says a word is `timeout` once git has run for the
/// worker's git time limit (one second here), retried too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_remote_is_network_and_a_silent_one_timeout_both_retried() {
    let mut fleet = git_fleet()
        .git_with(|git| git.timeout = Duration::from_secs(1))
        .store()
        .workers(1)
        .start()
        .await;
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    clone_fails_twice_with(
        &fleet,
        &format!("http://127.0.0.1:{port}/org/repo.git"),
        ErrorKind::Network,
        "Failed to connect to 127.0.0.1",
    )
    .await;

    // Listening, never accepted: the kernel completes every connection, nobody answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    clone_fails_twice_with(
        &fleet,
        &format!("http://127.0.0.1:{port}/org/repo.git"),
        ErrorKind::Timeout,
        "timed out after 1s",
    )
    .await;
    drop(silent);
    fleet.shutdown().await;
}

/// git failing on a sandbox for a reason no table knows (its index is garbage) is
/// `internal`, retried like any internal failure, and leaves the registry's row in `error`
/// with the failure and the count of errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_git_cannot_read_is_internal_and_in_error_in_the_registry() {
    let mut fleet = git_fleet().store().workers(1).start().await;
    sample_repo(&fleet.remotes(), "repo.git");
    let daemon = gitfleet_testkit::GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a", "task_id": "i"}),
        )
        .await;
    let id = c["sandbox_id"].as_str().unwrap().to_string();
    sandbox_row(fleet.store(), &id, |r| r.status == "ready").await;
    let work = work_tree(&fleet, "agent-a-i");
    std::fs::write(work.join(".git").join("index"), "not an index").unwrap();

    let job = fleet
        .submit("status", json!({"sandbox_id": id}), &two_attempts())
        .await;
    let r = fleet
        .client()
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.attempts), (JobStatus::Dead, 2), "{r:?}");
    let e = r.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Internal, "{e:?}");
    assert!(e.message.starts_with("git status failed: "), "{e:?}");
    let h = final_history(fleet.store(), &job.job_id).await;
    assert_eq!(h.job.error_kind.as_deref(), Some("internal"), "{h:?}");

    let row = sandbox_row(fleet.store(), &id, |r| r.error_count == 2).await;
    assert_eq!(row.status, "error", "{row:?}");
    assert_eq!(
        (row.use_count, row.last_operation.as_deref()),
        (3, Some("status")),
        "the clone and both runs: {row:?}"
    );
    assert_eq!(
        row.last_error,
        Some(format!("internal: {}", e.message)),
        "{row:?}"
    );
    fleet.shutdown().await;
}

/// While an op runs on a sandbox (a push the remote holds), the registry says `in_use`,
/// naming the op; once it ends, `ready` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_is_in_use_in_the_registry_while_an_op_runs_on_it() {
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let mut fleet = git_fleet().store().workers(1).start().await;
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "a", "task_id": "u"}),
        )
        .await;
    let id = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": id, "files": [{"path": "u.txt", "content": "u\n"}]}),
        )
        .await;
    sandbox_row(fleet.store(), &id, |r| r.use_count == 2).await;

    let push = fleet
        .submit(
            "push",
            json!({"sandbox_id": id, "message": "held", "target_branch": SHARED}),
            &EnqueueOptions::default(),
        )
        .await;
    remote
        .wait_until_held(Duration::from_secs(30), || format!("push {}", push.job_id))
        .await;
    let row = sandbox_row(fleet.store(), &id, |r| r.status == "in_use").await;
    assert_eq!(
        (row.use_count, row.last_operation.as_deref()),
        (3, Some("push")),
        "{row:?}"
    );

    remote.let_go().await;
    let r = fleet
        .client()
        .wait(&push.job_id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    let row = sandbox_row(fleet.store(), &id, |r| r.status == "ready").await;
    assert_eq!(
        (
            row.use_count,
            row.error_count,
            row.last_operation.as_deref()
        ),
        (3, 0, Some("push")),
        "{row:?}"
    );
    fleet.shutdown().await;
}
