//! `gitfleet submit --bulk`: one `{"op", "args"}` object a line in, one job id a line out,
//! in line order; a batch with a bad line is refused whole, naming the line (as counted in
//! the input, blank lines included), and nothing of it is enqueued.

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_testkit::eventually;
use serde_json::{Value, json};

use super::Env;

/// The jobs waiting on the shared queue `jobs`, oldest first, each as `{"op", "args"}`
/// with its id: exactly what was enqueued.
async fn waiting(env: &Env) -> Vec<(String, Value)> {
    let mut conn = env.fleet.test_queue().redis().await;
    let prefix = env.fleet.prefix();
    // Enqueued at the left, taken from the right.
    let mut ids: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{prefix}jobs"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    ids.reverse();
    let mut out = Vec::new();
    for id in ids {
        let payload: String = redis::cmd("HGET")
            .arg(format!("{prefix}job:{id}"))
            .arg("payload")
            .query_async(&mut conn)
            .await
            .unwrap();
        out.push((id, serde_json::from_str(&payload).unwrap()));
    }
    out
}

fn echo(i: usize) -> String {
    format!("{{\"op\":\"echo\",\"args\":{{\"i\":{i}}}}}")
}

/// The one line a refused batch prints: an `invalid_input` error; returns its message.
fn refused(code: i32, lines: &[String]) -> String {
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(lines.len(), 1, "one error object, no id: {lines:?}");
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

/// 2,500 lines (three round trips of the queue): 2,500 distinct ids, printed in line order:
/// the job of the n-th id printed is the n-th line, for every line, as enqueued and as run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_submit_prints_one_id_a_line_in_line_order_and_refuses_a_bad_batch_whole() {
    let mut env = Env::new().await;
    let input: String = (0..2500).map(|i| echo(i) + "\n").collect();
    let (code, ids) = env.run(&["submit", "--bulk"], Some(&input)).await;
    assert_eq!(code, 0);
    assert_eq!(ids.len(), 2500);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 2500, "distinct");
    let queued = waiting(&env).await;
    let expected: Vec<(String, Value)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), json!({"op": "echo", "args": {"i": i}})))
        .collect();
    assert!(
        queued == expected,
        "the queue holds line i's job under the i-th id printed, in line order"
    );

    env.fleet.add_worker().await;
    let queue = env.fleet.queue().clone();
    eventually("every job done", Duration::from_secs(60), async || {
        let stats = queue.stats().await.map_err(|e| e.to_string())?;
        if stats[0].done == 2500 {
            Ok(())
        } else {
            Err(format!("{stats:?}"))
        }
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let r = queue.job(id).await.unwrap().expect("kept");
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.result, Some(json!({"i": i})), "line {}'s id", i + 1);
    }
    env.fleet.shutdown().await;

    let bad = format!("{}\n{{\"op\":\"sleep\",\"args\":{{}}}}\n", echo(0));
    let (code, lines) = env.run(&["submit", "--bulk"], Some(&bad)).await;
    let message = refused(code, &lines);
    assert!(message.starts_with("line 2: ms:"), "{message}");
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(
        v[0]["waiting"], 0,
        "nothing from the bad batch was enqueued"
    );
}

/// No input at all, or only blank lines: no job, so no id, exit 0 and nothing enqueued (an
/// empty batch is not an error: a pipeline that made no jobs submits none). Blank lines
/// between jobs are skipped.
#[tokio::test]
async fn an_empty_bulk_enqueues_nothing_and_blank_lines_are_skipped() {
    let env = Env::new().await;
    for input in ["", "\n", "\n  \n\t\n"] {
        let (code, lines) = env.run(&["submit", "--bulk"], Some(input)).await;
        assert_eq!((code, &lines), (0, &Vec::new()), "{input:?}");
    }
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(v, json!([]), "nothing was enqueued");

    let input = format!("\n{}\n   \n\n{}\n\n", echo(1), echo(2));
    let (code, ids) = env.run(&["submit", "--bulk"], Some(&input)).await;
    assert_eq!(code, 0, "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(
        waiting(&env).await,
        [
            (ids[0].clone(), json!({"op": "echo", "args": {"i": 1}})),
            (ids[1].clone(), json!({"op": "echo", "args": {"i": 2}})),
        ]
    );
}

/// A line that is not a job (not JSON, JSON but no object, no op) refuses the batch whole,
/// naming the line by its number in the input, blank lines counted; nothing is enqueued.
#[tokio::test]
async fn a_bulk_with_a_line_that_is_not_a_job_object_is_refused_naming_the_line() {
    let env = Env::new().await;
    for (bad, problem) in [
        ("{oops", "key must be a string"),
        ("[1, 2]", "invalid type"),
        (r#"{"args": {}}"#, "missing field `op`"),
    ] {
        let input = format!("{}\n\n{bad}\n{}\n", echo(1), echo(2));
        let (code, lines) = env.run(&["submit", "--bulk"], Some(&input)).await;
        let message = refused(code, &lines);
        assert!(
            message.starts_with("line 3: not a {\"op\", \"args\"} object: ")
                && message.contains(problem),
            "{bad}: {message}"
        );
    }
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(v, json!([]), "nothing was enqueued");
}

/// A line whose job is over `GITFLEET_MAX_PAYLOAD_BYTES` refuses the batch whole, naming
/// the line and the limit; nothing is enqueued, not even the lines before it.
#[tokio::test]
async fn a_bulk_with_an_oversize_line_is_refused_whole_naming_the_line() {
    let env = Env::new().await;
    let big = format!(
        "{{\"op\":\"echo\",\"args\":{{\"blob\":\"{}\"}}}}",
        "x".repeat(2000)
    );
    let input = format!("{}\n{big}\n{}\n", echo(1), echo(2));
    let limit = [("GITFLEET_MAX_PAYLOAD_BYTES", "1000")];
    let (code, lines) = env
        .run_env(&["submit", "--bulk"], Some(&input), &limit)
        .await;
    let message = refused(code, &lines);
    assert_eq!(
        message,
        format!(
            "line 2: payload is {} bytes, over the limit of 1000 bytes",
            big.len()
        )
    );
    assert_eq!(waiting(&env).await, [], "nothing was enqueued");
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(v, json!([]), "nothing was enqueued");

    // Under the limit, the same lines are enqueued.
    let (code, ids) = env.run(&["submit", "--bulk"], Some(&input)).await;
    assert_eq!((code, ids.len()), (0, 3), "{ids:?}");
}
