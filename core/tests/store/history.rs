//! Reading the history back: each filter narrows the list, pages walk it by cursor in a
//! stable order (ties on the enqueue time included) with no repeats and no gaps, a cursor
//! that is not one is refused; the sandbox listing's filters; and a cancelled job's row.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gitfleet_client::Client;
use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_store::{
    JobCursor, JobEvent, JobFilter, JobSort, Record, SandboxEvent, SandboxFilter, SandboxOrigin,
    SandboxStatus, Store,
};
use gitfleet_testkit::{TestStore, eventually};
use serde_json::json;

use crate::fleet;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

/// A job's row as the client writes it at submit, enqueued at `enqueued` (`None`: a row
/// the record first heard of without an enqueue time).
fn job(id: &str, op: &str, enqueued: Option<DateTime<Utc>>, args: serde_json::Value) -> Record {
    Record::Job(JobEvent {
        org_id: Some(args["org"].as_str().unwrap_or("acme").to_string()),
        enqueued_at: enqueued,
        ..JobEvent::new(id, op, "jobs", JobStatus::Waiting, Some(&args))
    })
}

async fn ids(store: &Store, filter: JobFilter) -> Vec<String> {
    store
        .jobs(&JobFilter {
            limit: 100,
            ..filter
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.job_id)
        .collect()
}

#[tokio::test]
async fn each_filter_narrows_the_history_to_the_jobs_it_names() {
    let t = TestStore::new().await;
    let s = &t.store;
    s.apply(&[
        job(
            "J1",
            "clone",
            Some(at(1)),
            json!({"agent_id": "a1", "task_id": "t1"}),
        ),
        job(
            "J2",
            "status",
            Some(at(2)),
            json!({"agent_id": "a1", "task_id": "t1", "sandbox_id": "w1.s1"}),
        ),
        job(
            "J3",
            "status",
            Some(at(3)),
            json!({"agent_id": "a2", "task_id": "t2", "sandbox_id": "w1.s2", "org": "beta"}),
        ),
        job(
            "J4",
            "push",
            Some(at(4)),
            json!({"agent_id": "a1", "task_id": "t3", "sandbox_id": "w1.s1"}),
        ),
    ])
    .await
    .unwrap();
    s.apply(&[Record::Job(JobEvent {
        org_id: Some("acme".into()),
        finished_at: Some(at(5)),
        ..JobEvent::new("J5", "echo", "worker:w1", JobStatus::Cancelled, None)
    })])
    .await
    .unwrap();
    // J5's first write had no enqueue time: it comes first, before the newest.
    assert_eq!(
        ids(s, JobFilter::default()).await,
        ["J5", "J4", "J3", "J2", "J1"]
    );

    let cases: Vec<(&str, JobFilter, Vec<&str>)> = vec![
        (
            "status",
            JobFilter {
                status: Some("cancelled".into()),
                ..Default::default()
            },
            vec!["J5"],
        ),
        (
            "op",
            JobFilter {
                op: Some("status".into()),
                ..Default::default()
            },
            vec!["J3", "J2"],
        ),
        (
            "org",
            JobFilter {
                org: Some("beta".into()),
                ..Default::default()
            },
            vec!["J3"],
        ),
        (
            "agent",
            JobFilter {
                agent: Some("a1".into()),
                ..Default::default()
            },
            vec!["J4", "J2", "J1"],
        ),
        (
            "task",
            JobFilter {
                task: Some("t1".into()),
                ..Default::default()
            },
            vec!["J2", "J1"],
        ),
        (
            "sandbox",
            JobFilter {
                sandbox: Some("w1.s1".into()),
                ..Default::default()
            },
            vec!["J4", "J2"],
        ),
        (
            "queue",
            JobFilter {
                queue: Some("worker:w1".into()),
                ..Default::default()
            },
            vec!["J5"],
        ),
        (
            "since",
            JobFilter {
                since: Some(at(3)),
                ..Default::default()
            },
            vec!["J4", "J3"],
        ),
        (
            "until",
            JobFilter {
                until: Some(at(3)),
                ..Default::default()
            },
            vec!["J2", "J1"],
        ),
        (
            "since and until",
            JobFilter {
                since: Some(at(2)),
                until: Some(at(4)),
                ..Default::default()
            },
            vec!["J3", "J2"],
        ),
        (
            "agent, org and op",
            JobFilter {
                agent: Some("a1".into()),
                org: Some("acme".into()),
                op: Some("status".into()),
                ..Default::default()
            },
            vec!["J2"],
        ),
        (
            "an agent nobody has",
            JobFilter {
                agent: Some("a9".into()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (what, filter, expected) in cases {
        assert_eq!(ids(s, filter).await, expected, "{what}");
    }
}

#[tokio::test]
async fn pages_of_two_walk_jobs_of_one_enqueue_time_in_a_stable_order_without_repeats_or_gaps() {
    let t = TestStore::new().await;
    let s = &t.store;
    // Five jobs enqueued in the same microsecond, one older, one without a time, and one of
    // another organization in between.
    let mut records: Vec<Record> = ["01A", "01C", "01E", "01B", "01D"]
        .iter()
        .map(|id| job(id, "echo", Some(at(10)), json!({})))
        .collect();
    records.push(job("00OLD", "echo", Some(at(1)), json!({})));
    records.push(job("00NOTIME", "echo", None, json!({})));
    records.push(job("01Z", "echo", Some(at(10)), json!({"org": "beta"})));
    s.apply(&records).await.unwrap();

    let walk = async |filter: JobFilter| {
        let (mut seen, mut pages) = (Vec::new(), 0);
        let mut before = None;
        loop {
            let page = s
                .jobs_page(&JobFilter {
                    before,
                    limit: 2,
                    ..filter.clone()
                })
                .await
                .unwrap();
            pages += 1;
            assert!(page.rows.len() <= 2);
            seen.extend(page.rows.iter().map(|r| r.job_id.clone()));
            // The cursor goes out and comes back as a string, as through the gateway.
            match page.next {
                Some(next) => before = Some(JobCursor::decode(&next.encode()).unwrap()),
                None => break,
            }
            assert!(pages < 10, "pages never end: {seen:?}");
        }
        (seen, pages)
    };

    let (seen, pages) = walk(JobFilter {
        org: Some("acme".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        seen,
        ["00NOTIME", "01E", "01D", "01C", "01B", "01A", "00OLD"],
        "every job once, ties by id, newest first"
    );
    assert_eq!(pages, 4, "the last page has one row, and no next");
    let all = ids(
        s,
        JobFilter {
            org: Some("acme".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seen, all, "the pages put together are the whole list");

    // A filter with exactly two pages' worth: the second page says there is no third.
    let (seen, pages) = walk(JobFilter {
        org: Some("acme".into()),
        since: Some(at(5)),
        until: Some(at(11)),
        ..Default::default()
    })
    .await;
    assert_eq!(seen, ["01E", "01D", "01C", "01B", "01A"]);
    assert_eq!(pages, 3);

    // Rows written after a page was read do not shift the next page.
    let first = s
        .jobs_page(&JobFilter {
            org: Some("acme".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    s.apply(&[job("02NEW", "echo", Some(at(20)), json!({}))])
        .await
        .unwrap();
    let second = s
        .jobs_page(&JobFilter {
            org: Some("acme".into()),
            limit: 2,
            before: first.next,
            ..Default::default()
        })
        .await
        .unwrap();
    let second: Vec<&str> = second.rows.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(second, ["01D", "01C"]);
}

#[test]
fn a_cursor_that_this_listing_did_not_make_is_refused_saying_why() {
    let made = JobCursor {
        sort: JobSort::EnqueuedDesc,
        at: Some(at(0)),
        job_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
    };
    assert_eq!(JobCursor::decode(&made.encode()), Ok(made));
    let untimed = JobCursor {
        sort: JobSort::EnqueuedDesc,
        at: None,
        job_id: "01A".into(),
    };
    assert_eq!(JobCursor::decode(&untimed.encode()), Ok(untimed));
    // Another order's cursor says which (and reads back as it).
    let finished = JobCursor {
        sort: JobSort::FinishedAsc,
        at: Some(at(5)),
        job_id: "01B".into(),
    };
    assert_eq!(JobCursor::decode(&finished.encode()), Ok(finished));

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let cases = [
        ("", "cursor: must be 1-128 characters"),
        ("not base64!", "cursor: not base64url"),
        (&b64("no dot here"), "cursor: not a cursor of this listing"),
        (
            &b64("1800000000000000."),
            "cursor: not a cursor of this listing: no job id in it",
        ),
        (
            &b64("12.../etc"),
            "cursor: not a cursor of this listing: no job id in it",
        ),
        (
            &b64("soon.01A"),
            "cursor: not a cursor of this listing: no time in it",
        ),
        (
            &b64("sideways:12.01A"),
            "cursor: not a cursor of this listing: no order in it",
        ),
    ];
    for (text, why) in cases {
        let e = JobCursor::decode(text).expect_err(text).to_string();
        assert_eq!(
            e,
            format!("{why} (pass the `next` cursor of a page as it is)"),
            "{text:?}"
        );
    }
}

fn sandbox(
    id: &str,
    worker: &str,
    org: &str,
    agent: &str,
    repo: &str,
    status: SandboxStatus,
) -> Record {
    Record::Sandbox(SandboxEvent {
        sandbox_id: id.into(),
        worker_id: worker.into(),
        status,
        last_operation: Some("clone".into()),
        use_count: 1,
        error_count: 0,
        last_error: None,
        origin: Some(SandboxOrigin {
            org_id: Some(org.into()),
            agent_id: Some(agent.into()),
            task_id: Some("t".into()),
            repo_url: repo.into(),
            branch: "main".into(),
            agent_branch: format!("agent-{agent}-t"),
            config: json!({}),
            source: None,
        }),
        is_pooled: None,
        ttl_tier: None,
        expires_at: None,
        at: Utc::now(),
    })
}

#[tokio::test]
async fn the_sandbox_listing_narrows_by_status_worker_org_agent_and_repo() {
    let t = TestStore::new().await;
    let s = &t.store;
    let (r1, r2) = (
        "https://git.example/acme/app.git",
        "https://git.example/acme/lib.git",
    );
    s.apply(&[
        sandbox("w1.a", "w1", "acme", "a1", r1, SandboxStatus::Ready),
        sandbox("w1.b", "w1", "acme", "a2", r2, SandboxStatus::InUse),
        sandbox("w2.c", "w2", "beta", "a1", r1, SandboxStatus::Ready),
    ])
    .await
    .unwrap();
    let list = async |filter: SandboxFilter| -> Vec<String> {
        let mut ids: Vec<String> = s
            .sandboxes_filtered(&SandboxFilter {
                limit: 10,
                ..filter
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.sandbox_id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        list(SandboxFilter::default()).await,
        ["w1.a", "w1.b", "w2.c"]
    );
    assert_eq!(
        list(SandboxFilter {
            status: Some("ready".into()),
            ..Default::default()
        })
        .await,
        ["w1.a", "w2.c"]
    );
    assert_eq!(
        list(SandboxFilter {
            worker: Some("w2".into()),
            ..Default::default()
        })
        .await,
        ["w2.c"]
    );
    assert_eq!(
        list(SandboxFilter {
            org: Some("acme".into()),
            ..Default::default()
        })
        .await,
        ["w1.a", "w1.b"]
    );
    assert_eq!(
        list(SandboxFilter {
            agent: Some("a1".into()),
            ..Default::default()
        })
        .await,
        ["w1.a", "w2.c"]
    );
    assert_eq!(
        list(SandboxFilter {
            repo: Some(r2.into()),
            ..Default::default()
        })
        .await,
        ["w1.b"]
    );
    assert_eq!(
        list(SandboxFilter {
            repo: Some(r1.into()),
            org: Some("beta".into()),
            ..Default::default()
        })
        .await,
        ["w2.c"]
    );
    assert!(
        list(SandboxFilter {
            repo: Some("https://git.example/acme".into()),
            ..Default::default()
        })
        .await
        .is_empty(),
        "the repository matches exactly"
    );
    assert_eq!(s.sandboxes(2).await.unwrap().len(), 2, "the limit holds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_s_row_says_cancelled_over_its_waiting_row_and_over_a_retry_s() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    let mut setup = q.setup();
    // A retry waits a minute: long enough to cancel it while it waits.
    setup.config.retry_base = Duration::from_secs(60);
    setup.config.retry_max = Duration::from_secs(60);
    let client = Client::connect(q.queue().config().clone())
        .await
        .unwrap()
        .with_store(store.clone());

    // A job submitted through the client (its `waiting` row written then), cancelled.
    let spec = JobSpec::new("echo", json!({"agent_id": "a1", "task_id": "t1"}));
    let options = EnqueueOptions {
        org: Some("acme".into()),
        delay: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let waiting = client.submit("jobs", &spec, &options).await.unwrap();
    assert_eq!(
        store
            .job_row(&waiting.job_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        "delayed"
    );
    let beta = client.clone().with_org("beta").unwrap();
    assert!(
        beta.cancel(&waiting.job_id).await.unwrap().is_none(),
        "not beta's job"
    );
    assert!(
        beta.cancel_for(&waiting.job_id, Some("acme"))
            .await
            .is_err(),
        "a client of one organization cannot act for another"
    );
    let cancelled = client
        .cancel_for(&waiting.job_id, Some("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.was, JobStatus::Delayed);
    let row = store.job_row(&waiting.job_id).await.unwrap().unwrap();
    assert_eq!(row.status, "cancelled");
    assert_eq!(row.finished_at, Some(cancelled.finished_at));
    assert_eq!(
        (row.agent_id.as_deref(), row.task_id.as_deref()),
        (Some("a1"), Some("t1"))
    );
    assert_eq!(row.org_id.as_deref(), Some("acme"));

    // A job that failed once and waits out its retry: cancelled at the run it had.
    q.add_worker_with(setup).await;
    let flaky = q
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("flaky", json!({"fail_times": 5})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    eventually("the retry's row", Duration::from_secs(20), async || {
        let row = store.job_row(&flaky.job_id).await.unwrap();
        row.filter(|r| r.status == "delayed" && r.attempts == 1)
    })
    .await;
    let c = client.cancel(&flaky.job_id).await.unwrap().unwrap();
    assert_eq!((c.was, c.attempts), (JobStatus::Delayed, 1));
    let h = store.job_history(&flaky.job_id).await.unwrap().unwrap();
    assert_eq!(h.job.status, "cancelled");
    assert_eq!(h.job.attempts, 1);
    assert_eq!(h.job.error_kind, None, "the job itself did not fail");
    let runs: Vec<(i32, &str, Option<&str>)> = h
        .runs
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str(), r.error_kind.as_deref()))
        .collect();
    assert_eq!(
        runs,
        [(1, "retry", Some("internal"))],
        "its run keeps its error"
    );
    let record = q.queue().job(&flaky.job_id).await.unwrap().unwrap();
    assert_eq!((record.status, record.error), (JobStatus::Cancelled, None));

    let listed = store
        .jobs(&JobFilter {
            status: Some("cancelled".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    q.shutdown().await;
}
