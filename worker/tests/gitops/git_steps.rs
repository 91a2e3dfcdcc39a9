//! The git steps of each run, as a real worker records them against real git servers and
//! the record keeps them (`job_runs.git_steps`, read back by `Store::runs_of`): each git
//! command in order, with its phase, duration and outcome, and nothing a job sent.

use std::time::Duration;

use gitfleet_client::{Client, EnqueueOptions, JobSpec};
use gitfleet_contract::{GitCommand, GitStep, JobStatus, StepOutcome, StepPhase};
use gitfleet_store::{RunRow, Store};
use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{GitDaemon, HttpGitServer};
use serde_json::json;

use crate::support::{credentials_for, git_fleet, sample_repo};

/// The runs of `job_id` once `n` of them have ended (written in the background).
async fn ended_runs(store: &Store, job_id: &str, n: usize) -> Vec<RunRow> {
    for _ in 0..200 {
        let runs = store.runs_of(job_id).await.unwrap();
        if runs.len() == n && runs.iter().all(|r| r.outcome != "running") {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "job {job_id} never had {n} ended runs: {:?}",
        store.runs_of(job_id).await.unwrap()
    );
}

fn steps(run: &RunRow) -> &[GitStep] {
    run.git_steps
        .as_deref()
        .expect("an ended run has its steps")
}

fn commands(steps: &[GitStep]) -> Vec<(GitCommand, StepPhase)> {
    steps.iter().map(|s| (s.command, s.phase)).collect()
}

/// Whether `want` appears in `steps` in this order (other steps between allowed).
fn in_order(steps: &[GitStep], want: &[(GitCommand, StepPhase)]) -> bool {
    let mut want = want.iter().peekable();
    for s in steps {
        if want.peek() == Some(&&(s.command, s.phase)) {
            want.next();
        }
    }
    want.peek().is_none()
}

/// Steps begin in order, each within its run, and none takes longer than the run did.
fn assert_plausible(run: &RunRow) {
    let steps = steps(run);
    let run_ms = run.duration_ms.expect("an ended run has a duration");
    let mut last = 0;
    for s in steps {
        assert!(s.at_ms >= last, "steps out of order: {steps:?}");
        last = s.at_ms;
        // 50 ms of slack: the run's times are taken around the job, by another clock.
        assert!(
            (s.at_ms + s.ms) as f64 <= run_ms + 50.0,
            "a step outlasts its run of {run_ms} ms: {s:?}"
        );
    }
    let total: u64 = steps.iter().map(|s| s.ms).sum();
    assert!(
        total as f64 <= run_ms + 50.0,
        "{total} ms of steps in {run_ms} ms"
    );
    assert_eq!(run.git_steps_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_write_and_push_record_each_git_command_in_order_with_phase_time_and_outcome() {
    let mut fleet = git_fleet().store().start().await;
    let store = fleet.store().clone();
    let worker = fleet.add_worker().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();

    let clone = fleet
        .run(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    assert_eq!(clone.status, JobStatus::Done, "{clone:?}");
    let sandbox = clone.result.as_ref().unwrap()["sandbox_id"]
        .as_str()
        .unwrap()
        .to_string();
    let runs = ended_runs(&store, &clone.job_id, 1).await;
    let run = &runs[0];
    assert_eq!(
        (run.worker_id.as_str(), run.outcome.as_str()),
        (worker.as_str(), "done")
    );
    assert_eq!(run.sandbox_id.as_deref(), Some(sandbox.as_str()));
    // A cold worker: the mirror is made from the remote, then the sandbox from the mirror.
    assert!(
        in_order(
            steps(run),
            &[
                (GitCommand::Clone, StepPhase::Mirror),
                (GitCommand::Clone, StepPhase::Sandbox),
            ]
        ),
        "{:?}",
        commands(steps(run))
    );
    assert_plausible(run);
    let mirror_clone = steps(run)
        .iter()
        .find(|s| s.phase == StepPhase::Mirror && s.command == GitCommand::Clone)
        .unwrap();
    assert_eq!(mirror_clone.outcome, StepOutcome::Ok);
    assert!(mirror_clone.ms > 0, "a clone over the network takes time");

    let write = fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "notes/a.md", "content": "hi\n"}]}),
        )
        .await;
    assert_eq!(write["written"], 1);

    let push = fleet
        .run("push", json!({"sandbox_id": sandbox, "message": "notes"}))
        .await;
    assert_eq!(push.status, JobStatus::Done, "{push:?}");
    let runs = ended_runs(&store, &push.job_id, 1).await;
    let run = &runs[0];
    assert_eq!(run.sandbox_id.as_deref(), Some(sandbox.as_str()));
    let steps = steps(run);
    // Staged and committed in the sandbox, then pushed by the group commit, after it
    // looked at the remote's branch from the mirror.
    assert!(
        in_order(
            steps,
            &[
                (GitCommand::Add, StepPhase::Op),
                (GitCommand::Commit, StepPhase::Op),
                (GitCommand::LsRemote, StepPhase::Mirror),
                (GitCommand::Push, StepPhase::PushGroup),
            ]
        ),
        "{:?}",
        commands(steps)
    );
    let pushed = steps
        .iter()
        .find(|s| s.command == GitCommand::Push)
        .unwrap();
    assert_eq!((pushed.outcome, pushed.code), (StepOutcome::Ok, None));
    assert!(pushed.ms > 0, "a push over the network takes time");
    assert_plausible(run);
    assert_eq!(fixtures::remote_log(&bare, "agent-a1-t1")[0], "notes");

    // The history of the job carries the same runs.
    let history = store.job_history(&push.job_id).await.unwrap().unwrap();
    assert_eq!(history.runs, runs);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_remote_declines_records_its_failing_push_step_with_the_exit_status() {
    let mut fleet = git_fleet().store().start().await;
    let store = fleet.store().clone();
    fleet.add_worker().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let hook = bare.join("hooks").join("pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();

    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "x.md", "content": "x\n"}]}),
        )
        .await;
    let push = fleet
        .run_with(
            "push",
            json!({"sandbox_id": sandbox, "message": "declined"}),
            &EnqueueOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(push.status, JobStatus::Dead, "{push:?}");

    let runs = ended_runs(&store, &push.job_id, 1).await;
    let run = &runs[0];
    assert_eq!(run.outcome, "dead");
    assert_eq!(
        run.error_kind.as_deref(),
        push.error.as_ref().map(|e| e.kind.as_str())
    );
    let steps = steps(run);
    let failed: Vec<&GitStep> = steps
        .iter()
        .filter(|s| s.command == GitCommand::Push)
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", commands(steps));
    assert_eq!(
        (failed[0].phase, failed[0].outcome, failed[0].code),
        (StepPhase::PushGroup, StepOutcome::Exit, Some(1)),
        "{steps:?}"
    );
    // Nothing after the push that failed the job.
    assert_eq!(steps.last().unwrap().command, GitCommand::Push, "{steps:?}");
    assert_plausible(run);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_retried_job_is_its_own_run_with_its_worker_error_and_steps() {
    let mut fleet = git_fleet().store().start().await;
    let store = fleet.store().clone();
    fleet.add_worker().await;
    fleet.add_worker().await;
    let workers: Vec<String> = fleet.worker_ids().iter().map(|w| w.to_string()).collect();
    // Nothing listens there: every run fails with `network`, which is retried.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "git://127.0.0.1:{}/gone.git",
        free.local_addr().unwrap().port()
    );
    drop(free);

    let r = fleet
        .run_with(
            "clone",
            json!({"repo_url": url, "agent_id": "a1", "task_id": "t1"}),
            &EnqueueOptions {
                max_attempts: Some(2),
                ..Default::default()
            },
        )
        .await;
    assert_eq!((r.status, r.attempts), (JobStatus::Dead, 2), "{r:?}");

    let runs = ended_runs(&store, &r.job_id, 2).await;
    let seen: Vec<(i32, &str, Option<&str>)> = runs
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str(), r.error_kind.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [(1, "retry", Some("network")), (2, "dead", Some("network"))]
    );
    for run in &runs {
        assert!(
            workers.contains(&run.worker_id),
            "{run:?} not on {workers:?}"
        );
        assert!(
            run.error_message.as_deref().is_some_and(|m| !m.is_empty()),
            "{run:?}"
        );
        // Each run's own try at the remote, failing as git exits on a refused connection.
        let steps = steps(run);
        assert_eq!(
            commands(steps),
            [(GitCommand::Clone, StepPhase::Mirror)],
            "{steps:?}"
        );
        assert_eq!(
            (steps[0].outcome, steps[0].code),
            (StepOutcome::Exit, Some(128))
        );
        assert_plausible(run);
    }
    assert!(runs[0].started_at < runs[1].started_at);
    fleet.shutdown().await;
}

/// What a job sends never reaches its steps: a token (a credential), a password in a URL,
/// the repository's host, port and name, unusual branch names, the agent and task. The
/// steps are searched as the JSON Postgres holds, after they are shown to hold steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_password_url_or_branch_name_a_job_sent_appears_in_its_stored_steps() {
    const TOKEN: &str = "tok3n-Zq8VwXy1";
    const PASSWORD: &str = "pa55-Wq7Rt";
    let probe = git_fleet().start().await;
    let bare = sample_repo(&probe.remotes(), "zz-private-repo.git");
    let branch = "feature/Odd.Branch_x-1";
    let target = "release/Zz-Target.y_2";
    git(&bare, ["branch", branch, "main"]).unwrap();
    let server = HttpGitServer::start(&probe.remotes(), "agent", TOKEN).unwrap();
    let host = format!("127.0.0.1:{}", server.port());
    let url = server.url("zz-private-repo.git");
    let mut fleet = git_fleet()
        .git_with(|git| {
            git.credentials = credentials_for(&[format!("http://{host}")], "agent", TOKEN)
        })
        .store()
        .workers(1)
        .start()
        .await;
    let store = fleet.store().clone();

    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "branch": branch, "agent_id": "agQx9", "task_id": "tkRw4"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "secret-dir/x.md", "content": "x"}]}),
        )
        .await;
    let p = fleet
        .run(
            "push",
            json!({"sandbox_id": sandbox, "message": "m", "target_branch": target}),
        )
        .await;
    assert_eq!(p.status, JobStatus::Done, "{p:?}");
    assert_eq!(p.result.as_ref().unwrap()["branch"], target);
    // A URL with a password, enqueued past the client's checks (as a producer in another
    // language may): the worker refuses it, and its run records nothing of it either.
    let with_password = url.replace("http://", &format!("http://agent:{PASSWORD}@"));
    let spec = JobSpec::new(
        "clone",
        json!({"repo_url": with_password, "agent_id": "agQx9", "task_id": "tkRw5"}),
    );
    let queued = fleet
        .client()
        .queue()
        .enqueue(&Client::route(&spec), &spec, &EnqueueOptions::default())
        .await
        .unwrap();
    let refused = fleet
        .client()
        .wait(&queued.job_id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.status, JobStatus::Dead, "{refused:?}");
    // A branch the repository lacks: git says its name in its error; the step does not.
    let missing = fleet
        .run(
            "clone",
            json!({"repo_url": url, "branch": "no/Such-Branch.z", "agent_id": "agQx9", "task_id": "tkRw6"}),
        )
        .await;
    assert_eq!(missing.status, JobStatus::Dead, "{missing:?}");
    for job in [&p.job_id, &refused.job_id, &missing.job_id] {
        ended_runs(&store, job, 1).await;
    }

    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT git_steps::text FROM job_runs WHERE git_steps IS NOT NULL ORDER BY started_at",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let text = stored.join("\n");
    // Shown to hold what the jobs did first: a check of an empty place proves nothing.
    assert!(stored.len() >= 5, "{stored:?}");
    for word in ["\"push\"", "\"clone\"", "\"mirror\"", "\"push_group\""] {
        assert!(text.contains(word), "{word} in {text}");
    }
    for secret in [
        TOKEN,
        PASSWORD,
        &host,
        &server.port().to_string(),
        "127.0.0.1",
        "zz-private-repo",
        "http",
        "Odd.Branch",
        "Zz-Target",
        "Such-Branch",
        "agQx9",
        "tkRw",
        "secret-dir",
        &sandbox,
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} in the stored steps:\n{text}"
        );
    }
    // Nothing else in a step but the fixed fields.
    for steps in &stored {
        for step in serde_json::from_str::<Vec<serde_json::Value>>(steps).unwrap() {
            let mut keys: Vec<&str> = step
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            keys.retain(|k| *k != "code");
            keys.sort();
            assert_eq!(
                keys,
                ["at_ms", "command", "ms", "outcome", "phase"],
                "{step}"
            );
        }
    }
    fleet.shutdown().await;
}
