//! Fencing (issue 9, item 9): a worker paused for longer than the dead-after time is declared
//! dead by a survivor, which gives its jobs to others, answers its own queue
//! `sandbox_not_found` and frees its locks. When it resumes it must act as what it is now,
//! a stranger: push nothing under the lock it lost, serve none of its old sandboxes, and
//! leave the outcome of the run that took over its job alone. Then it exits (status 2).
//!
//! Worker A is paused (SIGSTOP, which its git processes, each in a process group of its
//! own, do not get) while it holds the `(repo, shared)` push lock with its push held by
//! the remote's `pre-receive` hook, and a `sleep` job running. Worker B declares it dead,
//! finishes the `sleep` job and lands a `change` on the same branch under the same lock.
//! The held push is then let go; the branch has moved, so the remote refuses it as a
//! concurrent push ("cannot lock ref"), which A, once resumed, would answer by replaying
//! its commit onto the new tip and pushing again if nothing stopped it.

use std::time::Duration;

use gitfleet_client::{ErrorKind, JobRecord, JobStatus};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::processes::ProcessFleet;
use gitfleet_testkit::held_remote::{HeldRemote, Hold, SHARED};

/// Fast death detection, so the test spends its time on the pause, not on waiting for it.
const FAST: [(&str, &str); 2] = [
    ("GITFLEET_HEARTBEAT_SECS", "1"),
    ("GITFLEET_DEAD_AFTER_SECS", "4"),
];

/// Enough for any step of this test on a loaded machine.
const WITHIN: Duration = Duration::from_secs(60);

async fn finished(q: &ProcessFleet, id: &str, what: &str) -> JobRecord {
    q.wait_for_job(id, WITHIN, what, |r| r.status.is_final())
        .await
}

async fn done(q: &ProcessFleet, queue: &str, op: &str, args: Value) -> Value {
    let id = q.submit(queue, op, args).await.job_id;
    let r = finished(q, &id, op).await;
    assert_eq!(r.status, JobStatus::Done, "{op}: {r:?}");
    r.result.expect("a done job has a result")
}

/// The push locks in Redis and their holders' tokens.
async fn push_locks(q: &ProcessFleet) -> Vec<(String, String)> {
    let mut redis = q.redis().await;
    let keys: Vec<String> = redis
        .keys(format!("{}lock:push:*", q.prefix()))
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        let value: Option<String> = redis.get(&key).await.unwrap();
        out.extend(value.map(|v| (key, v)));
    }
    out
}

#[tokio::test]
async fn a_worker_paused_past_the_dead_after_time_pushes_nothing_under_its_lost_lock_and_serves_no_old_sandbox()
 {
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let url = remote.url();
    let base_tip = remote.tip();
    let q = ProcessFleet::new().await;
    let mut a = q.spawn_worker(&FAST).await;
    q.wait_until_registered(&a.id).await;

    // A sandbox on A with a change in it, and its push held at the remote.
    let cloned = done(
        &q,
        "jobs",
        "clone",
        json!({"repo_url": url, "branch": SHARED, "agent_id": "stale", "task_id": "t1"}),
    )
    .await;
    let sandbox = cloned["sandbox_id"]
        .as_str()
        .expect("a sandbox id")
        .to_string();
    let a_root = q.sandbox_root(&a.id);
    assert!(a_root.join("sandboxes").is_dir(), "{}", a_root.display());
    done(
        &q,
        &a.own_queue(),
        "write_files",
        json!({"sandbox_id": sandbox, "files": [{"path": "stale.txt", "content": "from A\n"}]}),
    )
    .await;
    let push = q
        .submit(
            &a.own_queue(),
            "push",
            json!({"sandbox_id": sandbox, "message": "pushed by the stale worker",
                   "target_branch": SHARED}),
        )
        .await
        .job_id;
    remote.wait_until_held(WITHIN, || a.log_text()).await;
    let locks = push_locks(&q).await;
    assert!(
        locks.len() == 1 && locks[0].1.starts_with(&format!("{}:", a.id)),
        "A holds the branch's lock while its push is held: {locks:?}"
    );
    // And a job from the shared queue running on A.
    let sleep = q.submit("jobs", "sleep", json!({"ms": 3000})).await.job_id;
    q.wait_for_job(&sleep, WITHIN, "the sleep job running on A", |r| {
        r.status == JobStatus::Running && r.worker.as_deref() == Some(a.id.as_str())
    })
    .await;

    a.sigstop();
    let b = q.spawn_worker(&FAST).await;
    q.wait_until_declared_dead(&a.id, WITHIN).await;

    // B recovered A: A's push job is answered (its sandbox is gone with A), its lock freed,
    // its sleep job run again by B.
    let push_record = finished(&q, &push, "A's push answered").await;
    assert_eq!(push_record.status, JobStatus::Dead, "{push_record:?}");
    assert_eq!(
        push_record.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::SandboxNotFound),
        "{push_record:?}"
    );
    assert_eq!(push_locks(&q).await, [], "A's lock was freed");
    let slept = finished(&q, &sleep, "the sleep job finished by B").await;
    assert_eq!(slept.status, JobStatus::Done, "{slept:?}");
    assert_eq!(slept.worker.as_deref(), Some(b.id.as_str()), "{slept:?}");

    // B takes the branch's lock and lands a change while A sleeps.
    let change = q
        .submit(
            "jobs",
            "change",
            json!({"repo_url": url, "branch": SHARED, "agent_id": "live", "task_id": "t2",
                   "files": [{"path": "live.txt", "content": "from B\n"}],
                   "message": "landed by the live worker", "target_branch": SHARED}),
        )
        .await
        .job_id;
    let changed = finished(&q, &change, "B's change").await;
    assert_eq!(
        changed.status,
        JobStatus::Done,
        "{changed:?}\n{}",
        b.log_text()
    );
    assert_eq!(
        changed.worker.as_deref(),
        Some(b.id.as_str()),
        "{changed:?}"
    );
    let landed = changed.result.as_ref().unwrap()["commit_sha"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(remote.tip(), landed);

    // A's held push goes on now: the branch moved under it, so the remote refuses it.
    remote.let_go().await;
    assert_eq!(remote.tip(), landed, "the held push did not land");

    a.sigcont();
    let exit = a.wait_exit(WITHIN).await;
    assert_eq!(
        exit.code(),
        Some(2),
        "A exits 2 once it finds it was declared dead ({exit})\n{}",
        a.log_text()
    );
    assert!(
        a.log_text().contains("was declared dead by the fleet"),
        "A says why it stopped:\n{}",
        a.log_text()
    );

    // Nothing of A's landed after B took over: the branch is the base plus B's change,
    // each commit once, and the remote saw exactly A's refused push and B's.
    let commits = remote.commits();
    let parent = remote_parent(&remote, &landed);
    assert_eq!(
        parent, base_tip,
        "B's change sits right on the base: {commits:?}"
    );
    assert_eq!(remote.carrying(&change), [landed.as_str()], "{commits:?}");
    assert_eq!(remote.carrying(&push), Vec::<String>::new(), "{commits:?}");
    assert!(
        commits
            .iter()
            .all(|(_, body)| !body.contains("stale worker")),
        "no commit of A's on {SHARED}: {commits:?}"
    );
    let pushes = remote.pushes();
    assert_eq!(
        pushes.len(),
        2,
        "A's held push and B's, no other: {pushes:?}\n{}",
        a.log_text()
    );
    assert_eq!(pushes[1].1, landed, "{pushes:?}");

    // A serves no old sandbox: an op routed to it is answered sandbox_not_found, and its
    // sandboxes (with its copies and mirrors) are gone from disk.
    let status = q
        .submit(&a.own_queue(), "status", json!({"sandbox_id": sandbox}))
        .await
        .job_id;
    let r = finished(&q, &status, "status of A's old sandbox").await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    assert_eq!(
        r.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::SandboxNotFound),
        "{r:?}"
    );
    assert!(
        !a_root.exists(),
        "A's sandbox root {} is gone",
        a_root.display()
    );
    assert!(
        !q.client.queue().is_worker_alive(&a.id).await.unwrap(),
        "A never came back as a live worker"
    );

    // A's late outcomes changed nothing: both jobs read as they did before it woke up.
    for (before, id) in [(&push_record, &push), (&slept, &sleep), (&changed, &change)] {
        let now = q.job(id).await.unwrap();
        assert_eq!(
            (
                &now.status,
                &now.result,
                &now.error,
                &now.finished_at,
                &now.worker
            ),
            (
                &before.status,
                &before.result,
                &before.error,
                &before.finished_at,
                &before.worker
            ),
            "job {id} is as it was"
        );
    }
}

/// The first parent of `sha` on the remote.
fn remote_parent(remote: &HeldRemote, sha: &str) -> String {
    gitfleet_testkit::fixtures::git(&remote.bare, ["rev-parse", &format!("{sha}^")])
        .unwrap()
        .trim()
        .to_string()
}
