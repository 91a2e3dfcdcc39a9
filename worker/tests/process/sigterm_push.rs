//! SIGTERM while the remote holds the reply to a push (issue 9, item 8): the push has landed
//! (the remote's `post-receive` hook runs after the branch moved) but git has not answered
//! the worker. Whatever the worker does then, the job ends `done` with its commit on the
//! remote exactly once:
//! - a `change` cut off by a short grace period is given back, and the next run (no more
//!   an attempt than the first: a given-back run does not count) finds its commit by its
//!   `Gitfleet-Job` trailer instead of committing again;
//! - a `push` from a sandbox, within the grace period, waits for the remote's answer and
//!   is finished by the worker itself before it exits.

use std::time::Duration;

use gitfleet_client::{JobRecord, JobStatus};
use serde_json::{Value, json};

use crate::processes::ProcessFleet;
use gitfleet_testkit::held_remote::{HeldRemote, Hold, SHARED};

const FAST: [(&str, &str); 2] = [
    ("GITFLEET_HEARTBEAT_SECS", "1"),
    ("GITFLEET_DEAD_AFTER_SECS", "4"),
];

const WITHIN: Duration = Duration::from_secs(60);

async fn finished(q: &ProcessFleet, id: &str, what: &str) -> JobRecord {
    q.wait_for_job(id, WITHIN, what, |r| r.status.is_final())
        .await
}

/// The job's answer is the one commit on the remote that carries its trailer, the branch's
/// tip, one commit on top of `base`.
fn landed_once(remote: &HeldRemote, id: &str, record: &JobRecord, base: &str) -> String {
    assert_eq!(record.status, JobStatus::Done, "{record:?}");
    let result: &Value = record.result.as_ref().expect("a done job has a result");
    let sha = result["commit_sha"]
        .as_str()
        .expect("a commit_sha")
        .to_string();
    assert_eq!(
        remote.carrying(id),
        [sha.as_str()],
        "{:?}",
        remote.commits()
    );
    assert_eq!(remote.tip(), sha, "its commit is the branch's tip");
    let parent =
        gitfleet_testkit::fixtures::git(&remote.bare, ["rev-parse", &format!("{sha}^")]).unwrap();
    assert_eq!(parent.trim(), base, "one commit on top of the base");
    sha
}

/// `change` onto the branch it starts from: a re-run that did not look for its trailer
/// would find its files already there and fail "nothing to commit".
#[tokio::test]
async fn sigterm_while_the_remote_holds_a_landed_change_s_reply_ends_done_with_its_commit_once() {
    let remote = HeldRemote::new(Hold::AfterRefUpdate);
    let base = remote.tip();
    let q = ProcessFleet::new().await;
    let grace: Vec<(&str, &str)> = FAST
        .iter()
        .copied()
        .chain([("GITFLEET_GRACE_SECS", "1")])
        .collect();
    let mut a = q.spawn_worker(&grace).await;
    q.wait_until_registered(&a.id).await;

    let id = q
        .submit(
            "jobs",
            "change",
            json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "term",
                   "task_id": "t1", "files": [{"path": "term.txt", "content": "once\n"}],
                   "message": "land once", "target_branch": SHARED}),
        )
        .await
        .job_id;
    remote.wait_until_held(WITHIN, || a.log_text()).await;
    assert_eq!(remote.carrying(&id).len(), 1, "the push has landed");
    let r = q.job(&id).await.unwrap();
    assert_eq!(
        (r.status, r.worker.as_deref()),
        (JobStatus::Running, Some(a.id.as_str())),
        "A waits for the remote's answer: {r:?}"
    );

    a.sigterm();
    let exit = a.wait_exit(WITHIN).await;
    assert_eq!(
        exit.code(),
        Some(1),
        "the grace period ended with the push unanswered: given back ({exit})\n{}",
        a.log_text()
    );
    let r = q.job(&id).await.unwrap();
    assert_eq!(
        (r.status, r.attempts, r.given_back),
        (JobStatus::Waiting, 0, 1),
        "given back, the cut-off run not counted: {r:?}"
    );

    let b = q.spawn_worker(&FAST).await;
    let r = finished(&q, &id, "the change run again").await;
    assert_eq!(
        r.worker.as_deref(),
        Some(b.id.as_str()),
        "{r:?}\n{}",
        b.log_text()
    );
    assert_eq!((r.attempts, r.given_back), (1, 1), "{r:?}");
    landed_once(&remote, &id, &r, &base);
    assert_eq!(
        remote.pushes().len(),
        1,
        "B found the commit and pushed nothing"
    );
    remote.let_go().await;
}

/// A `push` from a sandbox: within the grace period the worker waits for the remote, so
/// the job is done by the worker that pushed it, before it exits.
#[tokio::test]
async fn sigterm_while_the_remote_holds_a_push_s_reply_lets_it_finish_done_with_its_commit_once() {
    let remote = HeldRemote::new(Hold::AfterRefUpdate);
    let base = remote.tip();
    let q = ProcessFleet::new().await;
    let env: Vec<(&str, &str)> = FAST
        .iter()
        .copied()
        .chain([("GITFLEET_GRACE_SECS", "30")])
        .collect();
    let mut a = q.spawn_worker(&env).await;
    q.wait_until_registered(&a.id).await;

    let clone = q
        .submit(
            "jobs",
            "clone",
            json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "term", "task_id": "t2"}),
        )
        .await
        .job_id;
    let cloned = finished(&q, &clone, "clone").await;
    let sandbox = cloned.result.as_ref().expect("a result")["sandbox_id"]
        .as_str()
        .expect("a sandbox id")
        .to_string();
    let wrote = q
        .submit(
            &a.own_queue(),
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "term.txt", "content": "once\n"}]}),
        )
        .await
        .job_id;
    assert_eq!(
        finished(&q, &wrote, "write_files").await.status,
        JobStatus::Done
    );
    let id = q
        .submit(
            &a.own_queue(),
            "push",
            json!({"sandbox_id": sandbox, "message": "land once", "target_branch": SHARED}),
        )
        .await
        .job_id;
    remote.wait_until_held(WITHIN, || a.log_text()).await;
    assert_eq!(remote.carrying(&id).len(), 1, "the push has landed");

    a.sigterm();
    a.wait_for_log("stopping: no new jobs", WITHIN).await;
    let r = q.job(&id).await.unwrap();
    assert_eq!(
        r.status,
        JobStatus::Running,
        "still waiting for the remote: {r:?}"
    );
    remote.let_go().await;
    let exit = a.wait_exit(WITHIN).await;
    assert!(
        exit.success(),
        "drained within the grace period ({exit})\n{}",
        a.log_text()
    );

    let r = q.job(&id).await.unwrap();
    assert_eq!(r.worker.as_deref(), Some(a.id.as_str()), "{r:?}");
    assert_eq!((r.attempts, r.given_back), (1, 0), "{r:?}");
    landed_once(&remote, &id, &r, &base);
    assert_eq!(remote.pushes().len(), 1, "pushed once");
}
