//! The push lock's check right before each `git push` (fencing, issue 9 item 9), on its
//! own: the worker stays alive and registered, only its lock is gone. A pusher (a push
//! group, or a shallow sandbox pushing alone) holds the `(repo, branch)` lock while the
//! remote holds its push; meanwhile the lock passes to
//! another holder (as when it expired, or was freed when its holder was taken for dead)
//! and someone outside the fleet moves the branch. The held push is refused ("cannot lock
//! ref"), and the pusher's retry, which would rebase onto the new tip and push again, must
//! find that the lock is no longer its own and push nothing; the job fails retryably and
//! lands once, later, under a lock it holds.

use std::time::Duration;

use gitfleet_contract::JobStatus;
use gitfleet_testkit::eventually;
use gitfleet_testkit::fixtures::git;
use gitfleet_testkit::held_remote::{HeldRemote, Hold, SHARED};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::git_fleet;

/// How the job pushes.
#[derive(Clone, Copy, Debug)]
enum Pusher {
    /// A `change`: its commit joins the worker's push group for the branch.
    Group,
    /// A `push` from a shallow sandbox, which pushes by itself from its working copy.
    Alone,
}

async fn a_push_whose_lock_passed_to_another_holder(pusher: Pusher) {
    let mut fleet = git_fleet().workers(1).start().await;
    let worker = fleet.worker_ids()[0].to_string();
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let queue = fleet.queue().clone();
    let files = json!([{"path": "checked.txt", "content": "once\n"}]);
    let message = "pushed under its own lock";
    let id = match pusher {
        Pusher::Group => {
            fleet
                .submit(
                    "change",
                    json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "lock",
                           "task_id": "t1", "files": files, "message": message,
                           "target_branch": SHARED}),
                    &Default::default(),
                )
                .await
                .job_id
        }
        Pusher::Alone => {
            let cloned = fleet
                .ok(
                    "clone",
                    json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "lock",
                           "task_id": "t2", "shallow": true}),
                )
                .await;
            let sandbox = cloned["sandbox_id"].as_str().unwrap().to_string();
            fleet
                .ok(
                    "write_files",
                    json!({"sandbox_id": sandbox, "files": files}),
                )
                .await;
            fleet
                .submit(
                    "push",
                    json!({"sandbox_id": sandbox, "message": message, "target_branch": SHARED}),
                    &Default::default(),
                )
                .await
                .job_id
        }
    };
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;

    // The lock passes to another holder while the push is held.
    let mut redis = fleet.test_queue().redis().await;
    let keys: Vec<String> = redis
        .keys(format!("{}lock:push:*", fleet.prefix()))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let lock = keys[0].clone();
    let holder: String = redis.get(&lock).await.unwrap();
    assert!(holder.starts_with(&format!("{worker}:")), "{holder}");
    let _: () = redis
        .set_ex(&lock, "another-worker-01:01JTHIEF", 120)
        .await
        .unwrap();

    // Someone outside the fleet pushes meanwhile, so the held push is refused.
    let tree = git(&remote.bare, ["rev-parse", &format!("{SHARED}^{{tree}}")]).unwrap();
    let outside = git(
        &remote.bare,
        [
            "commit-tree",
            "-p",
            SHARED,
            "-m",
            "pushed from outside the fleet",
            &tree,
        ],
    )
    .unwrap();
    git(
        &remote.bare,
        ["update-ref", &format!("refs/heads/{SHARED}"), &outside],
    )
    .unwrap();
    remote.let_go().await;

    // The group's retry finds the lock is not its own: nothing pushed, the job retries.
    let failed = eventually(
        "the job's run failed without pushing",
        Duration::from_secs(60),
        async || {
            let r = queue.job(&id).await.unwrap()?;
            r.error
                .as_ref()
                .is_some_and(|e| e.message.contains("lost before pushing"))
                .then_some(r)
        },
    )
    .await;
    assert!(!failed.status.is_final(), "it is retried: {failed:?}");
    assert_eq!(
        remote.pushes().len(),
        1,
        "only the refused one: {:?}",
        remote.pushes()
    );
    assert_eq!(
        remote.tip(),
        outside,
        "nothing landed on top of the outside push"
    );

    // The other holder lets go: the next run lands the commit, once.
    let _: () = redis.del(&lock).await.unwrap();
    let done = eventually("the job done", Duration::from_secs(60), async || {
        let r = queue.job(&id).await.unwrap()?;
        (r.status == JobStatus::Done).then_some(r)
    })
    .await;
    let sha = done.result.as_ref().unwrap()["commit_sha"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        remote.carrying(&id),
        [sha.as_str()],
        "{:?}",
        remote.commits()
    );
    assert_eq!(remote.tip(), sha);
    let parent = git(&remote.bare, ["rev-parse", &format!("{sha}^")]).unwrap();
    assert_eq!(parent, outside, "on top of the outside push");
    assert_eq!(remote.pushes().len(), 2, "{:?}", remote.pushes());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_group_whose_lock_passed_to_another_holder_pushes_nothing_until_it_holds_it_again() {
    a_push_whose_lock_passed_to_another_holder(Pusher::Group).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_push_whose_lock_passed_to_another_holder_pushes_nothing_until_it_holds_it_again() {
    a_push_whose_lock_passed_to_another_holder(Pusher::Alone).await;
}
