//! Large answers: a `diff` longer than git's output cap (4 MiB per stream) comes back cut
//! there and says `truncated`, its counts whole; a result over 64 KiB reaches the waiter
//! whole while the record keeps only its size.

use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_store::Store;
use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{GitDaemon, eventually};
use serde_json::{Value, json};

use crate::support::{git_fleet, work_tree};

/// Most bytes of one git stream a worker keeps (`GitSettings::sandboxes`' `max_output`).
const GIT_OUTPUT_CAP: usize = 4 << 20;
/// Most bytes of a result (as JSON) the record keeps (the recorder's `MAX_RESULT_BYTES`).
const RECORDED_RESULT_CAP: usize = 64 * 1024;

/// The `result` column of job `job_id` once its row is `done`.
async fn recorded_result(store: &Store, job_id: &str) -> Value {
    eventually(
        format!("the done row of {job_id}"),
        Duration::from_secs(30),
        async || {
            store
                .job_row(job_id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|r| r.status == "done")
                .and_then(|r| r.result)
                .ok_or_else(|| "not done yet".to_string())
        },
    )
    .await
}

/// A diff of a deleted 5 MiB file: the text is the first 4 MiB of what `git diff` prints,
/// `truncated` says so, and the counts are the whole diff's. The waiter gets all of it; the
/// record keeps `{"truncated": true, "bytes": n}`, `n` the result's size as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_past_the_output_cap_is_cut_and_says_so_and_the_record_keeps_its_size() {
    let mut fleet = git_fleet().store().workers(1).start().await;
    const LINES: usize = 400_000;
    let big: String = (0..LINES).map(|i| format!("line {i:07}\n")).collect();
    assert!(big.len() > GIT_OUTPUT_CAP);
    fixtures::bare_repo(
        &fleet.remotes(),
        "big.git",
        &[("README.md", "# big\n"), ("big.txt", &big)],
    );
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("big.git"), "agent_id": "a", "task_id": "d"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "big.txt", "delete": true}]}),
        )
        .await;

    let job = fleet
        .submit("diff", json!({"sandbox_id": sandbox}), &Default::default())
        .await;
    let r = fleet
        .client()
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, JobStatus::Done, "{:?}", r.error);
    let d = r.result.unwrap();
    assert_eq!(d["truncated"], true);
    assert_eq!(
        (&d["files_changed"], &d["insertions"], &d["deletions"]),
        (&json!(1), &json!(0), &json!(LINES)),
        "the counts are the whole diff's"
    );
    let text = d["diff"].as_str().unwrap();
    let full = git(
        &work_tree(&fleet, "agent-a-d"),
        ["diff", "--no-color", "--no-ext-diff", "--no-textconv"],
    )
    .unwrap();
    assert!(full.len() > GIT_OUTPUT_CAP);
    assert_eq!(text.len(), GIT_OUTPUT_CAP);
    assert!(full.starts_with(text), "the diff's first 4 MiB");

    // A small diff, in the same sandbox, is whole and recorded whole.
    let small = fleet
        .ok(
            "diff",
            json!({"sandbox_id": sandbox, "paths": ["README.md"]}),
        )
        .await;
    assert_eq!(
        (&small["truncated"], &small["files_changed"]),
        (&json!(false), &json!(0))
    );

    let bytes = d.to_string().len();
    assert!(bytes > RECORDED_RESULT_CAP);
    assert_eq!(
        recorded_result(fleet.store(), &job.job_id).await,
        json!({"truncated": true, "bytes": bytes})
    );
    fleet.shutdown().await;
}

/// The record's cap, at its edge: a result of exactly 64 KiB (as JSON) is kept as it is, one
/// byte more and only its size is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_of_64_kib_is_recorded_whole_and_one_byte_more_as_its_size() {
    let mut fleet = git_fleet().store().workers(1).start().await;
    // `{"s":"…"}`: eight bytes around the string.
    for (bytes, whole) in [
        (RECORDED_RESULT_CAP, true),
        (RECORDED_RESULT_CAP + 1, false),
    ] {
        let args = json!({"s": "x".repeat(bytes - 8)});
        assert_eq!(args.to_string().len(), bytes);
        let job = fleet
            .submit("echo", args.clone(), &Default::default())
            .await;
        let r = fleet
            .client()
            .wait(&job.job_id, Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(r.result.as_ref() == Some(&args), "the waiter gets it whole");
        let recorded = recorded_result(fleet.store(), &job.job_id).await;
        if whole {
            assert!(recorded == args, "{bytes} bytes recorded whole");
        } else {
            assert_eq!(recorded, json!({"truncated": true, "bytes": bytes}));
        }
    }
    fleet.shutdown().await;
}
