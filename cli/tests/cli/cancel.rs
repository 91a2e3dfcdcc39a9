//! `gitfleet cancel`: a waiting or delayed job leaves its queue and ends `cancelled`; a
//! running or finished one is refused with kind `conflict`; the exit codes say which.

use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_testkit::eventually;
use serde_json::{Value, json};

use super::Env;

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().expect("a job id").to_string()
}

#[tokio::test]
async fn cancel_takes_waiting_and_delayed_jobs_out_and_a_second_cancel_is_a_conflict() {
    let env = Env::new().await;
    let (_, waiting) = env
        .run_json(&["submit", "echo", "{}", "--idempotency-key", "task-1"])
        .await;
    let (_, delayed) = env
        .run_json(&["submit", "echo", r#"{"n":2}"#, "--delay", "60"])
        .await;
    let (waiting, delayed) = (id_of(&waiting), id_of(&delayed));

    for id in [&waiting, &delayed] {
        let (code, v) = env.run_json(&["cancel", id]).await;
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["job_id"], id.as_str());
        assert_eq!(v["status"], "cancelled");
        assert_eq!(v["result"], Value::Null, "it never ran: {v}");
        assert_eq!(v["started_at"], Value::Null, "{v}");
        super::assert_micros_time(&v, "finished_at");
    }
    let (_, stats) = env.run_json(&["queues"]).await;
    assert_eq!(
        stats,
        json!([{"queue": "jobs", "waiting": 0, "running": 0, "delayed": 0, "done": 0, "dead": 0,
                "cancelled": 2}]),
        "both left their queue"
    );

    // `job` of a cancelled job, waited for or not, exits 6: no failure, and no result.
    let (code, v) = env.run_json(&["job", &waiting]).await;
    assert_eq!((code, v["status"].as_str()), (6, Some("cancelled")), "{v}");
    let (code, _) = env
        .run_json(&["job", &delayed, "--wait", "--timeout", "5"])
        .await;
    assert_eq!(code, 6);

    let (code, v) = env.run_json(&["cancel", &waiting]).await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["error"]["kind"], "conflict", "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("job {waiting} is already cancelled")
    );

    // Its idempotency key still names it: the same submit answers with the cancelled job
    // (and exits as for it).
    let (code, again) = env
        .run_json(&["submit", "echo", "{}", "--idempotency-key", "task-1"])
        .await;
    assert_eq!(code, 6, "{again}");
    assert_eq!(again["job_id"], waiting.as_str());
    assert_eq!(again["status"], "cancelled");

    let (code, v) = env
        .run_json(&["cancel", "01NOSUCHJOBNOSUCHJOBNOSUCH"])
        .await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["error"]["kind"], "invalid_input");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("no job 01NOSUCHJOBNOSUCHJOBNOSUCH"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_is_refused_naming_its_worker_and_the_job_runs_on() {
    let mut env = Env::new().await;
    let worker = env.fleet.add_worker().await;
    let (_, v) = env.run_json(&["submit", "sleep", r#"{"ms": 1500}"#]).await;
    let id = id_of(&v);
    let queue = env.fleet.queue().clone();
    eventually("the job to run", Duration::from_secs(20), async || {
        let r = queue.job(&id).await.map_err(|e| e.to_string())?.unwrap();
        if r.status == JobStatus::Running {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    })
    .await;

    let (code, v) = env.run_json(&["cancel", &id]).await;
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["error"]["kind"], "conflict", "{v}");
    assert_eq!(
        v["error"]["message"],
        format!(
            "job {id} is running on worker {worker}; only a waiting or delayed job can be \
             cancelled"
        )
    );

    let (code, done) = env
        .run_json(&["job", &id, "--wait", "--timeout", "20"])
        .await;
    assert_eq!((code, done["status"].as_str()), (0, Some("done")), "{done}");
    let (code, v) = env.run_json(&["cancel", &id]).await;
    assert_eq!(code, 2);
    assert_eq!(
        v["error"]["message"],
        format!("job {id} is already done"),
        "{v}"
    );
}
