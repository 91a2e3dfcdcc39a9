//! `gitfleet queues`: the counts of every queue, running and dead jobs included, exactly.

use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::{Fleet, eventually};
use serde_json::json;

use super::Env;

/// With a worker that runs two jobs at a time: one job done, one that died in the worker
/// (its run time is up: `timeout`, exit 1), two running and one waiting behind them; each
/// is counted where it is, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_counts_running_and_dead_jobs_exactly() {
    let mut env = Env::on(
        Fleet::builder("cli").config(WorkerConfig {
            name_stem: "cli".into(),
            concurrency: 2,
            // The jobs still running at the end are given back at once.
            grace_period: Duration::from_millis(100),
            ..Default::default()
        }),
        None,
    )
    .await;
    env.fleet.add_worker().await;

    let (code, v) = env
        .run_json(&["submit", "echo", "{}", "--wait", "--timeout", "30"])
        .await;
    assert_eq!((code, v["status"].as_str()), (0, Some("done")), "{v}");
    let (code, dead) = env
        .run_json(&[
            "submit",
            "sleep",
            r#"{"ms": 60000}"#,
            "--timeout-ms",
            "100",
            "--max-attempts",
            "1",
            "--wait",
            "--timeout",
            "30",
        ])
        .await;
    assert_eq!(code, 1, "a job that died in a worker exits 1: {dead}");
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(dead["error"]["kind"], "timeout", "{dead}");
    assert_eq!(dead["attempts"], 1, "{dead}");
    let mut sleeping = Vec::new();
    for _ in 0..3 {
        let (code, v) = env.run_json(&["submit", "sleep", r#"{"ms": 60000}"#]).await;
        assert_eq!(code, 0, "{v}");
        sleeping.push(v["job_id"].as_str().unwrap().to_string());
    }
    // Waited for on the jobs' own records, not on the counts under test.
    let queue = env.fleet.queue().clone();
    eventually("two jobs running", Duration::from_secs(20), async || {
        let mut statuses = Vec::new();
        for id in &sleeping {
            let r = queue.job(id).await.map_err(|e| e.to_string())?;
            statuses.push(r.map(|r| r.status));
        }
        let running = statuses
            .iter()
            .filter(|s| **s == Some(JobStatus::Running))
            .count();
        if running == 2 {
            Ok(())
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await;

    let (code, v) = env.run_json(&["queues"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v,
        json!([
            {"queue": "jobs", "waiting": 1, "running": 2, "delayed": 0, "done": 1, "dead": 1,
             "cancelled": 0},
        ])
    );
    env.fleet.shutdown().await;
}
