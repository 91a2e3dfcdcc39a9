//! The push protocol's promises that show only when pushes meet (DESIGN.md, "Push
//! protocol"): a push refused because someone outside the fleet pushed meanwhile is backed
//! off, rebased and retried, from a full sandbox (through the push group) and from a
//! shallow one (alone, in its own working copy); the branch lock's wait runs out with
//! `timeout`; a push held longer than the lock's TTL keeps its lock; a push group carries at
//! most its cap of requests; a `change` that conflicts fails alone and leaves nothing.
//!
//! Each remote is a [`HeldRemote`], which holds the first push in its `pre-receive` hook
//! until the test lets it go. The lock's TTL and wait and the batch cap are shortened
//! ([`PushSettings`]) where the test needs them to run out within seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobRecord, JobSpec, JobStatus};
use gitfleet_core::ops::{Ops, PushSettings};
use gitfleet_testkit::eventually;
use gitfleet_testkit::fixtures::{git, git_with_env};
use gitfleet_testkit::held_remote::{HeldRemote, Hold, SHARED};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{git_fleet, work_tree};

/// The message of every commit pushed from outside the fleet.
const OUTSIDE: &str = "pushed from outside the fleet";

/// How a sandbox's push goes out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pusher {
    /// From a full sandbox: its commit joins the worker's push group, replayed in the
    /// mirror; the sandbox is moved onto the landed commit afterwards.
    Group,
    /// From a shallow sandbox, which pushes by itself: fetch, rebase in its own working
    /// copy, push.
    Alone,
}

/// Puts a commit adding `path` with `content` on the remote's [`SHARED`], as someone
/// outside the fleet pushing would (straight into the bare repository: no hook runs, so the
/// remote's record of pushes holds the fleet's only). Returns its id.
fn push_from_outside(remote: &HeldRemote, path: &str, content: &str) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("content");
    std::fs::write(&file, content).unwrap();
    let index = [("GIT_INDEX_FILE", scratch.path().join("index"))];
    let bare = &remote.bare;
    let blob = git(bare, ["hash-object", "-w", file.to_str().unwrap()]).unwrap();
    let parent = remote.tip();
    git_with_env(bare, ["read-tree", &parent], index.clone()).unwrap();
    let entry = format!("100644,{blob},{path}");
    git_with_env(
        bare,
        ["update-index", "--add", "--cacheinfo", &entry],
        index.clone(),
    )
    .unwrap();
    let tree = git_with_env(bare, ["write-tree"], index).unwrap();
    let commit = git(bare, ["commit-tree", "-p", &parent, "-m", OUTSIDE, &tree]).unwrap();
    git(
        bare,
        [
            "update-ref",
            &format!("refs/heads/{SHARED}"),
            &commit,
            &parent,
        ],
    )
    .unwrap();
    commit
}

/// What a file holds on the remote's [`SHARED`].
fn on_remote(remote: &HeldRemote, path: &str) -> String {
    git(&remote.bare, ["show", &format!("{SHARED}:{path}")]).unwrap()
}

/// The commits in `old..new` on the remote.
fn commits_between(remote: &HeldRemote, old: &str, new: &str) -> usize {
    git(
        &remote.bare,
        ["rev-list", "--count", &format!("{old}..{new}")],
    )
    .unwrap()
    .parse()
    .unwrap()
}

/// Waits for job `id` to finish; returns its record.
async fn finished(fleet: &gitfleet_testkit::Fleet, id: &str) -> JobRecord {
    let record = fleet
        .client()
        .wait(id, Duration::from_secs(90))
        .await
        .unwrap()
        .expect("the job's record");
    assert!(record.status.is_final(), "{record:?}");
    record
}

/// The only mirror of the only worker of `fleet` (`<root>/<worker id>/mirrors/<key>.git`).
fn the_mirror(fleet: &gitfleet_testkit::Fleet) -> PathBuf {
    let root = fleet
        .sandbox_root()
        .join(fleet.worker_ids()[0])
        .join("mirrors");
    let mirrors: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "git"))
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    mirrors[0].clone()
}

/// Waits until the mirror holds a commit carrying each job's trailer: a `change` builds its
/// commit there, and hands it to the push group right after (no git runs in between), so
/// the job's request is waiting in the group by the time a held push is let go.
async fn until_built(mirror: &Path, ids: &[String]) {
    eventually(
        "every change built its commit in the mirror",
        Duration::from_secs(60),
        async || {
            let objects = git(mirror, ["cat-file", "--batch-all-objects", "--batch"])
                .map_err(|e| e.to_string())?;
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !objects.contains(&format!("Gitfleet-Job: {id}")))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no commit yet for {missing:?}"))
            }
        },
    )
    .await
}

/// A `change` of `path` to `content` on [`SHARED`], by agent `agent`.
fn change(remote: &HeldRemote, agent: &str, path: &str, content: &str) -> Value {
    json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": agent, "task_id": "t",
           "files": [{"path": path, "content": content}],
           "message": format!("work of {agent}"), "target_branch": SHARED})
}

async fn a_push_refused_because_someone_outside_the_fleet_pushed(pusher: Pusher) {
    let mut fleet = git_fleet().workers(1).start().await;
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let base = remote.tip();
    let shallow = pusher == Pusher::Alone;
    let cloned = fleet
        .ok(
            "clone",
            json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "out",
                   "task_id": "t", "shallow": shallow}),
        )
        .await;
    let sandbox = cloned["sandbox_id"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, "agent-out-t");
    assert_eq!(
        work.join(".git/shallow").exists(),
        shallow,
        "the sandbox is shallow exactly when asked"
    );
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox,
                   "files": [{"path": "agent.txt", "content": "from the agent\n"}]}),
        )
        .await;
    let id = fleet
        .submit(
            "push",
            json!({"sandbox_id": sandbox, "message": "the agent's work", "target_branch": SHARED}),
            &Default::default(),
        )
        .await
        .job_id;

    // The agent has committed and its push is at the remote; someone outside the fleet
    // pushes meanwhile, so the held push is refused when it goes on.
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;
    let outside = push_from_outside(&remote, "outside.txt", "from outside\n");
    remote.let_go().await;

    let record = finished(&fleet, &id).await;
    assert_eq!(record.status, JobStatus::Done, "{record:?}");
    assert_eq!(record.attempts, 1, "retried within one run: {record:?}");
    let result = record.result.clone().unwrap();
    assert_eq!(result["branch"], SHARED);
    assert_eq!(result["attempts"], 2, "refused once, then landed: {result}");
    assert_eq!(result["rebased"], true, "onto the outside push: {result}");
    let sha = result["commit_sha"].as_str().unwrap().to_string();

    // The remote: the outside commit, then the agent's on top of it, each once.
    assert_eq!(remote.tip(), sha);
    assert_eq!(
        git(&remote.bare, ["rev-parse", &format!("{sha}^")]).unwrap(),
        outside,
        "rebased onto the outside push"
    );
    assert_eq!(
        commits_between(&remote, &base, &sha),
        2,
        "two commits added"
    );
    assert_eq!(
        remote.carrying(&id),
        [sha.as_str()],
        "{:?}",
        remote.commits()
    );
    let outside_commits: Vec<_> = remote
        .commits()
        .into_iter()
        .filter(|(_, body)| body == OUTSIDE)
        .collect();
    assert_eq!(outside_commits.len(), 1, "{outside_commits:?}");
    assert_eq!(on_remote(&remote, "agent.txt"), "from the agent");
    assert_eq!(on_remote(&remote, "outside.txt"), "from outside");

    // Two pushes reached the remote: the refused one, made before the outside push, and the
    // retry on top of it. The retry waited for the backoff first: the remote heard nothing
    // from the fleet (no fetch, no push) for the backoff's least first delay, 1 s (jitter
    // only adds), after the refused push was answered, which is after the hook let it go.
    // (Both times by the remote's clock; a lower bound only.)
    let pushes = remote.pushes();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert_eq!(pushes[0].0, base, "{pushes:?}");
    assert_eq!(
        (pushes[1].0.as_str(), pushes[1].1.as_str()),
        (outside.as_str(), sha.as_str()),
        "{pushes:?}"
    );
    let let_go = remote.let_go_at().expect("the hook let go");
    let requests = remote.requests();
    let (next, service) = requests
        .iter()
        .find(|(at, _)| *at > let_go)
        .expect("the retry's requests");
    let waited = next.duration_since(let_go).unwrap();
    assert!(
        waited >= Duration::from_secs(1),
        "the retry's first request ({service}) came {waited:?} after the refusal, before the \
         backoff's least delay: {requests:?}"
    );

    // The sandbox sits on the landed commit, clean, with both files; how it got there
    // shows which path pushed: a rebase in the working copy (alone), or a move onto the
    // commit replayed in the mirror (the group).
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["head_sha"], sha.as_str(), "{s}");
    assert_eq!(s["branch"], "agent-out-t", "{s}");
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}: {s}");
    }
    assert_eq!(
        std::fs::read_to_string(work.join("outside.txt")).unwrap(),
        "from outside\n"
    );
    assert_eq!(work.join(".git/shallow").exists(), shallow);
    let moves = git(&work, ["reflog", "--format=%gs"]).unwrap();
    let rebased_in_place = moves.lines().any(|l| l.starts_with("rebase"));
    assert_eq!(rebased_in_place, shallow, "{pusher:?}: {moves}");
    fleet.shutdown().await;
}

/// From a full sandbox, the push group replays the commit onto the outside push after the
/// backoff and lands it: both commits on the remote exactly once, the agent's on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_because_someone_outside_pushed_is_backed_off_rebased_and_lands_once() {
    a_push_refused_because_someone_outside_the_fleet_pushed(Pusher::Group).await;
}

/// A shallow sandbox cannot join a push group (its objects are its own): it pushes alone,
/// rebasing in its working copy, with the same backoff and the same outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shallow_sandbox_pushes_alone_and_rebases_in_place_after_an_outside_push() {
    a_push_refused_because_someone_outside_the_fleet_pushed(Pusher::Alone).await;
}

async fn a_push_that_cannot_get_the_branch_lock_within_the_wait(pusher: Pusher) {
    let settings = PushSettings {
        lock_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let mut fleet = git_fleet()
        .ops(Ops::builtin().with_push_settings(settings))
        .workers(1)
        .start()
        .await;
    // A second worker serving a queue of its own, so the two pushes run on two workers
    // (one worker would put both in one push group, which waits for nothing).
    let mut elsewhere = fleet.setup();
    elsewhere.config.queues = vec!["elsewhere".into()];
    let second = fleet.add_worker_with(elsewhere).await;
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    // One attempt, so the record keeps the run's outcome (a timeout is retryable).
    let once = EnqueueOptions {
        max_attempts: Some(1),
        ..Default::default()
    };
    let waiting = change(&remote, "waiter", "waiter.txt", "waits for the lock\n");
    // The lone pusher: a shallow sandbox on the second worker, its change written.
    let sandbox = match pusher {
        Pusher::Group => None,
        Pusher::Alone => {
            let spec = JobSpec::new(
                "clone",
                json!({"repo_url": remote.url(), "branch": SHARED, "agent_id": "waiter",
                       "task_id": "t", "shallow": true}),
            );
            let id = fleet
                .client()
                .submit("elsewhere", &spec, &Default::default())
                .await
                .unwrap()
                .job_id;
            let cloned = finished(&fleet, &id).await;
            let sandbox = cloned.result.unwrap()["sandbox_id"]
                .as_str()
                .unwrap()
                .to_string();
            fleet
                .ok(
                    "write_files",
                    json!({"sandbox_id": sandbox, "files": waiting["files"]}),
                )
                .await;
            Some(sandbox)
        }
    };

    let holder = fleet
        .submit(
            "change",
            change(&remote, "holder", "holder.txt", "holds the lock\n"),
            &Default::default(),
        )
        .await
        .job_id;
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;

    let waiter = match &sandbox {
        None => {
            let spec = JobSpec::new("change", waiting);
            fleet
                .client()
                .submit("elsewhere", &spec, &once)
                .await
                .unwrap()
        }
        Some(sandbox) => {
            let args = json!({"sandbox_id": sandbox, "message": "waits for the lock",
                              "target_branch": SHARED});
            fleet.submit("push", args, &once).await
        }
    }
    .job_id;
    let record = finished(&fleet, &waiter).await;
    assert_eq!(record.status, JobStatus::Dead, "{record:?}");
    assert_eq!(
        record.worker.as_deref(),
        Some(second.as_str()),
        "{record:?}"
    );
    assert_eq!(record.attempts, 1, "{record:?}");
    let error = record.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
    assert!(
        error.message.contains(&format!("branch {SHARED} "))
            && error.message.contains("lock not free within 1000 ms"),
        "{error:?}"
    );

    // The holder lands; the waiter pushed nothing.
    remote.let_go().await;
    let held = finished(&fleet, &holder).await;
    assert_eq!(held.status, JobStatus::Done, "{held:?}");
    assert_eq!(remote.pushes().len(), 1, "{:?}", remote.pushes());
    assert_eq!(remote.carrying(&holder).len(), 1);
    assert_eq!(remote.carrying(&waiter), Vec::<String>::new());
    fleet.shutdown().await;
}

/// One worker's push holds the branch's lock (its push is held at the remote); another
/// worker's `change` to the same branch (a push group of its own) waits for the lock as
/// long as the lock wait allows, then fails with `timeout` naming the branch, having pushed
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_group_that_cannot_get_the_branch_lock_within_the_wait_fails_with_timeout() {
    a_push_that_cannot_get_the_branch_lock_within_the_wait(Pusher::Group).await;
}

/// The same for a shallow sandbox's push, which takes the lock by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_push_that_cannot_get_the_branch_lock_within_the_wait_fails_with_timeout() {
    a_push_that_cannot_get_the_branch_lock_within_the_wait(Pusher::Alone).await;
}

/// A push held at the remote for three times the lock's TTL keeps the lock all along (it is
/// renewed while held): nobody else could take it, and when the held push is refused (someone
/// outside pushed meanwhile) the retry's check that the lock is still its own passes and the
/// commit lands. Without renewal the lock would lapse after one TTL and the retry would
/// push nothing ("lost before pushing").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_held_longer_than_the_lock_ttl_keeps_its_lock_and_lands() {
    const TTL: Duration = Duration::from_secs(1);
    let settings = PushSettings {
        lock_ttl: TTL,
        ..Default::default()
    };
    let mut fleet = git_fleet()
        .ops(Ops::builtin().with_push_settings(settings))
        .workers(1)
        .start()
        .await;
    let worker = fleet.worker_ids()[0].to_string();
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let id = fleet
        .submit(
            "change",
            change(&remote, "long", "long.txt", "held a long time\n"),
            &Default::default(),
        )
        .await
        .job_id;
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;

    // For three TTLs, every look finds the lock held with the same token, this worker's.
    let mut redis = fleet.test_queue().redis().await;
    let keys: Vec<String> = redis
        .keys(format!("{}lock:push:*", fleet.prefix()))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let token: String = redis.get(&keys[0]).await.unwrap();
    assert!(token.starts_with(&format!("{worker}:")), "{token}");
    let watched = std::time::Instant::now();
    let mut looks = 0;
    while watched.elapsed() < TTL * 3 {
        let now: Option<String> = redis.get(&keys[0]).await.unwrap();
        assert_eq!(
            now.as_deref(),
            Some(token.as_str()),
            "the lock after {:?} of a {TTL:?} TTL (look {looks})",
            watched.elapsed()
        );
        looks += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let outside = push_from_outside(&remote, "outside.txt", "from outside\n");
    remote.let_go().await;
    let record = finished(&fleet, &id).await;
    assert_eq!(record.status, JobStatus::Done, "{record:?}");
    let result = record.result.clone().unwrap();
    assert_eq!(result["attempts"], 2, "refused once, then landed: {result}");
    let sha = result["commit_sha"].as_str().unwrap();
    assert_eq!(remote.carrying(&id), [sha], "{:?}", remote.commits());
    assert_eq!(
        git(&remote.bare, ["rev-parse", &format!("{sha}^")]).unwrap(),
        outside
    );
    // Released once the push is done.
    let left: Option<String> = redis.get(&keys[0]).await.unwrap();
    assert_eq!(left, None);
    fleet.shutdown().await;
}

/// More pushes waiting for one branch than a push group carries: they go out in several
/// `git push`es, none carrying more than the cap, every commit once. The first push is held
/// at the remote while seven more join the group, so seven wait when it is let go: with a
/// cap of three they go out three, three, one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_beyond_the_batch_cap_go_out_in_several_pushes_of_at_most_the_cap() {
    const CAP: usize = 3;
    const MORE: usize = 7;
    let settings = PushSettings {
        max_batch: CAP,
        ..Default::default()
    };
    let mut fleet = git_fleet()
        .ops(Ops::builtin().with_push_settings(settings))
        .workers(1)
        .start()
        .await;
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let base = remote.tip();
    let first = fleet
        .submit(
            "change",
            change(&remote, "first", "first.txt", "first\n"),
            &Default::default(),
        )
        .await
        .job_id;
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;
    let mut ids = Vec::new();
    for i in 0..MORE {
        let args = change(&remote, &format!("a{i}"), &format!("a{i}.txt"), "more\n");
        ids.push(
            fleet
                .submit("change", args, &Default::default())
                .await
                .job_id,
        );
    }
    until_built(&the_mirror(&fleet), &ids).await;
    remote.let_go().await;

    for id in std::iter::once(&first).chain(&ids) {
        let record = finished(&fleet, id).await;
        assert_eq!(record.status, JobStatus::Done, "{record:?}");
        assert_eq!(remote.carrying(id).len(), 1, "{id}: {:?}", remote.commits());
    }
    let pushes = remote.pushes();
    let sizes: Vec<usize> = pushes
        .iter()
        .map(|(old, new, _)| commits_between(&remote, old, new))
        .collect();
    assert_eq!(sizes, [1, 3, 3, 1], "{pushes:?}");
    assert_eq!(commits_between(&remote, &base, &remote.tip()), 1 + MORE);
    // Each push went on from where the one before left the branch: no push replaced
    // another's commits.
    for pair in pushes.windows(2) {
        assert_eq!(pair[1].0, pair[0].1, "{pushes:?}");
    }
    fleet.shutdown().await;
}

/// A `change` whose file was changed on the branch since its commit was built (another
/// change landed first, rewriting the same file) fails with `conflict` naming the path; a
/// change of another file in the same push lands; the remote keeps the first rewrite and
/// nothing of the conflicting change; and the `change`, having no sandbox, leaves none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_conflicts_fails_alone_with_the_path_and_leaves_nothing() {
    let mut fleet = git_fleet().workers(1).start().await;
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let base = remote.tip();
    let first = fleet
        .submit(
            "change",
            change(&remote, "first", "README.md", "# rewritten first\n"),
            &Default::default(),
        )
        .await
        .job_id;
    remote
        .wait_until_held(Duration::from_secs(60), String::new)
        .await;
    // Built on the branch as it was, before the first rewrite lands.
    let clashing = fleet
        .submit(
            "change",
            change(&remote, "clash", "README.md", "# rewritten again\n"),
            &Default::default(),
        )
        .await
        .job_id;
    let other = fleet
        .submit(
            "change",
            change(&remote, "other", "other.txt", "elsewhere\n"),
            &Default::default(),
        )
        .await
        .job_id;
    until_built(&the_mirror(&fleet), &[clashing.clone(), other.clone()]).await;
    remote.let_go().await;

    let failed = finished(&fleet, &clashing).await;
    assert_eq!(failed.status, JobStatus::Dead, "{failed:?}");
    assert_eq!(failed.attempts, 1, "a conflict is not retried: {failed:?}");
    let error = failed.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error:?}");
    assert!(
        error.message.contains("README.md") && error.message.contains(SHARED),
        "{error:?}"
    );
    for id in [&first, &other] {
        let record = finished(&fleet, id).await;
        assert_eq!(record.status, JobStatus::Done, "{record:?}");
        assert_eq!(remote.carrying(id).len(), 1, "{:?}", remote.commits());
    }
    assert_eq!(remote.carrying(&clashing), Vec::<String>::new());
    assert_eq!(on_remote(&remote, "README.md"), "# rewritten first");
    assert_eq!(on_remote(&remote, "other.txt"), "elsewhere");
    assert_eq!(commits_between(&remote, &base, &remote.tip()), 2);
    // No branch of its own was made, on the remote or anywhere in the worker's sandboxes.
    assert!(
        git(
            &remote.bare,
            ["rev-parse", "--verify", "--quiet", "agent-clash-t"]
        )
        .is_err()
    );
    let mut redis = fleet.test_queue().redis().await;
    let sandboxes: Vec<String> = redis
        .keys(format!("{}sandbox:*", fleet.prefix()))
        .await
        .unwrap();
    assert_eq!(sandboxes, Vec::<String>::new(), "no sandbox registered");
    fleet.shutdown().await;
}
