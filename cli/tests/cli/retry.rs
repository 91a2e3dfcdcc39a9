//! `gitfleet retry` and the exit of a job that died in a worker: a job a worker ran and
//! failed for good exits 1 with its error; `retry` sends it back with a fresh set of
//! attempts, and once its cause is fixed it runs to done.

use gitfleet_testkit::{Fleet, GitDaemon, fixtures};
use serde_json::{Value, json};

use super::Env;

/// A clone of a repository the git server does not have yet dies in the worker (exit 1,
/// the worker's `invalid_input`, one attempt); `retry` puts it back in its queue waiting,
/// with its attempts reset, and, the repository made meanwhile, it runs to done. `retry`
/// of a job that is not dead, or of no job, is refused (exit 2) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_died_in_a_worker_exits_1_and_retry_runs_it_again_to_done() {
    let mut env = Env::on(Fleet::builder("cli").git(), None).await;
    let worker = env.fleet.add_worker().await;
    let daemon = GitDaemon::start(&env.fleet.remotes()).unwrap();
    let args =
        json!({"repo_url": daemon.url("late.git"), "agent_id": "a1", "task_id": "t1"}).to_string();

    let (code, dead) = env
        .run_json(&["submit", "clone", &args, "--wait", "--timeout", "60"])
        .await;
    assert_eq!(code, 1, "{dead}");
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(dead["error"]["kind"], "invalid_input", "{dead}");
    let message = dead["error"]["message"].as_str().unwrap();
    assert!(message.contains("late.git"), "{message}");
    assert_eq!(
        dead["attempts"], 1,
        "invalid_input is never retried: {dead}"
    );
    assert!(
        dead["started_at"].is_string(),
        "it ran in a worker, not refused at enqueue: {dead}"
    );
    assert!(dead.get("result").is_none(), "{dead}");
    let id = dead["job_id"].as_str().unwrap().to_string();
    let (code, again) = env.run_json(&["job", &id]).await;
    assert_eq!((code, &again), (1, &dead), "`job` of it exits 1 too");

    // No worker while it is retried, so what `retry` left is what is seen.
    env.fleet.stop_worker(&worker).await;
    let (code, retried) = env.run_json(&["retry", &id]).await;
    assert_eq!(code, 0, "{retried}");
    assert_eq!(retried["job_id"], id.as_str());
    assert_eq!(retried["status"], "waiting", "{retried}");
    assert_eq!(retried["attempts"], 0, "a fresh set of attempts: {retried}");
    assert_eq!(retried["started_at"], Value::Null, "{retried}");
    assert_eq!(retried["finished_at"], Value::Null, "{retried}");
    let (_, queues) = env.run_json(&["queues"]).await;
    assert_eq!(
        queues,
        json!([{"queue": "jobs", "waiting": 1, "running": 0, "delayed": 0, "done": 0, "dead": 0,
                "cancelled": 0}])
    );

    // A job that is not dead (waiting, now) is refused, and left as it is.
    let (code, v) = env.run_json(&["retry", &id]).await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("job {id} is waiting, not dead"),
        "{v}"
    );
    let (code, v) = env.run_json(&["retry", "01NOSUCHJOBNOSUCHJOBNOSUCH"]).await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(
        v["error"]["message"], "no job 01NOSUCHJOBNOSUCHJOBNOSUCH",
        "{v}"
    );

    // The cause fixed, the retried job runs to done, once.
    fixtures::bare_repo(&env.fleet.remotes(), "late.git", &[("README.md", "hi\n")]);
    env.fleet.add_worker().await;
    let (code, done) = env
        .run_json(&["job", &id, "--wait", "--timeout", "60"])
        .await;
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert!(done["result"]["sandbox_id"].is_string(), "{done}");
    let (_, queues) = env.run_json(&["queues"]).await;
    assert_eq!(
        queues,
        json!([{"queue": "jobs", "waiting": 0, "running": 0, "delayed": 0, "done": 1, "dead": 0,
                "cancelled": 0}])
    );
    env.fleet.shutdown().await;
}
