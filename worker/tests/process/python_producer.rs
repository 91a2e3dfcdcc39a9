//! Producers in other languages write to the queue with the documented push script; a Rust
//! worker must run what they enqueue.

use std::process::Stdio;
use std::time::Duration;

use gitfleet_client::JobStatus;
use serde_json::{Value, json};

use crate::processes::ProcessFleet;

const PRODUCER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/process/producer.py");
const ENQUEUE_LUA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../queue/src/lua/enqueue.lua");

/// Fails (never skips) when python3 or redis-py is missing: CI installs both.
fn require_redis_py() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install python3 and redis-py"));
    assert!(
        out.status.success(),
        "python3 cannot import redis (redis-py): run `pip install redis` (CI installs it)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_python_producer_enqueues_with_the_documented_script_and_a_rust_worker_runs_it() {
    require_redis_py();
    let q = ProcessFleet::new().await;
    let _w = q.spawn_worker(&[]).await;

    let args = json!({"from": "python", "n": 42, "nested": {"list": [1, 2, 3], "s": "é\"\\"}});
    let run = tokio::process::Command::new("python3")
        .arg(PRODUCER)
        .args([&q.config().redis_url, q.prefix(), ENQUEUE_LUA, "echo"])
        .arg(args.to_string())
        .args(["--org", "acme"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the producer finishes within 60 s")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "producer.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("producer.py printed {stdout:?}, not one JSON line: {e}"));

    assert_eq!(report["status"], "done", "{report}");
    let result: Value = serde_json::from_str(report["result"].as_str().expect("a result"))
        .expect("the result field is JSON");
    assert_eq!(result, args, "echo's result is its args");
    let refused = report["malformed_error"].as_str().unwrap_or_default();
    assert!(refused.starts_with("invalid_input:"), "{report}");

    // The Rust side reads the Python-made job like any other.
    let id = report["job_id"].as_str().expect("a job id");
    let r = q.job(id).await.unwrap();
    assert_eq!(
        (r.status, r.op.as_str()),
        (JobStatus::Done, "echo"),
        "{r:?}"
    );
    assert_eq!(r.result, Some(args));
    assert_eq!(
        r.org.as_deref(),
        Some("acme"),
        "the script took the org: {r:?}"
    );
}
