//! Writing a batch of records at once: consecutive job records are written by one
//! statement per table, and the rows must end exactly as writing the records one by one
//! leaves them: the forward-only guard, a reset, a late replay, the same job twice in a
//! batch, runs' rows, and other records between jobs' all included.

use chrono::{DateTime, Duration, TimeZone, Utc};
use gitfleet_contract::{
    ErrorKind, GitCommand, GitStep, GitSteps, JobError, JobStatus, StepOutcome, StepPhase,
};
use gitfleet_store::{
    JobEvent, Record, SandboxEvent, SandboxOrigin, SandboxStatus, Store, WorkerEvent,
};
use gitfleet_testkit::TestStore;
use serde_json::{Value, json};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap() + Duration::milliseconds(ms)
}

/// The git steps of run `attempt` of job `n`: a fetch (failed in the first run), and
/// `attempt` steps past the cap.
fn steps(n: usize, attempt: u32) -> GitSteps {
    let failed = attempt == 1;
    GitSteps {
        steps: vec![GitStep {
            command: GitCommand::Fetch,
            phase: StepPhase::Mirror,
            at_ms: n as u64,
            ms: 10 + u64::from(attempt),
            outcome: if failed {
                StepOutcome::Exit
            } else {
                StepOutcome::Ok
            },
            code: failed.then_some(128),
        }],
        dropped: attempt,
    }
}

/// Job `n`'s life: enqueued, a run that fails and waits for a retry, a second run that
/// ends `end`; `t` is its time base.
fn life(n: usize, end: JobStatus, t: i64) -> Vec<Record> {
    let id = format!("01BATCH{n:04}");
    let args = json!({"agent_id": format!("agent-{n}"), "task_id": "t", "sandbox_id": "s"});
    let ev = |status: JobStatus, attempts: u32| JobEvent {
        org_id: Some(if n.is_multiple_of(2) { "acme" } else { "beta" }.into()),
        attempts,
        max_attempts: Some(3),
        ..JobEvent::new(&id, "echo", "jobs", status, Some(&args))
    };
    let run = |a: u32| Some(format!("{id}-run{a}"));
    let worker = Some("w1".to_string());
    let mut out = vec![
        Record::Job(JobEvent {
            enqueued_at: Some(at(t)),
            ..ev(JobStatus::Waiting, 0)
        }),
        Record::Job(JobEvent {
            run_id: run(1),
            worker_id: worker.clone(),
            started_at: Some(at(t + 1)),
            ..ev(JobStatus::Running, 1)
        }),
        Record::Job(JobEvent {
            run_id: run(1),
            worker_id: worker.clone(),
            started_at: Some(at(t + 1)),
            finished_at: Some(at(t + 2)),
            retry_at: Some(at(t + 50)),
            error: Some(JobError::new(
                ErrorKind::Network,
                format!("job {n}: the remote hung up"),
            )),
            git_steps: Some(steps(n, 1)),
            ..ev(JobStatus::Delayed, 1)
        }),
        Record::Job(JobEvent {
            run_id: run(2),
            worker_id: worker.clone(),
            started_at: Some(at(t + 60)),
            ..ev(JobStatus::Running, 2)
        }),
    ];
    let mut last = JobEvent {
        run_id: run(2),
        worker_id: worker,
        started_at: Some(at(t + 60)),
        finished_at: Some(at(t + 61)),
        git_steps: Some(steps(n, 2)),
        ..ev(end, 2)
    };
    match end {
        JobStatus::Done => last.result = Some(json!({"n": n, "text": "it's \"quoted\""})),
        _ => last.error = Some(JobError::timeout(format!("job {n} ran out of time"))),
    }
    out.push(Record::Job(last));
    out
}

/// Records for a dozen jobs, interleaved as several workers' writers would send them,
/// with records of other kinds between, late replays and a hand retry (a reset).
fn records() -> Vec<Record> {
    let lives: Vec<Vec<Record>> = (0..12usize)
        .map(|n| {
            let end = if n.is_multiple_of(3) {
                JobStatus::Dead
            } else {
                JobStatus::Done
            };
            life(n, end, n as i64 * 100)
        })
        .collect();
    let mut out = Vec::new();
    // Round-robin: each job's events in order, the jobs interleaved, so runs of distinct
    // jobs form and each job comes back in the same batch.
    for step in 0..5 {
        for l in &lives {
            out.push(l[step].clone());
        }
        if step == 1 {
            out.push(Record::Worker(WorkerEvent {
                worker_id: "w1".into(),
                host: "h".into(),
                version: "0".into(),
                pid: 1,
                queues: "jobs".into(),
                state: "running".into(),
                started_at: at(0),
                at: at(1),
            }));
            out.push(Record::Sandbox(SandboxEvent {
                sandbox_id: "s".into(),
                worker_id: "w1".into(),
                status: SandboxStatus::Ready,
                last_operation: Some("clone".into()),
                use_count: 1,
                error_count: 0,
                last_error: None,
                origin: Some(SandboxOrigin {
                    org_id: Some("acme".into()),
                    agent_id: Some("agent-0".into()),
                    task_id: Some("t".into()),
                    repo_url: "git://127.0.0.1/r.git".into(),
                    branch: "main".into(),
                    agent_branch: "agent/0".into(),
                    config: json!({}),
                    source: None,
                }),
                is_pooled: None,
                ttl_tier: None,
                expires_at: None,
                at: at(2),
            }));
        }
    }
    // Late replays (a spool read back after the fact): each may not move its row back.
    out.push(lives[1][1].clone());
    out.push(lives[2][0].clone());
    // Job 0 died; sent back by hand, its attempts start again (a reset applies whatever
    // the row says), then it is waiting once more, in the same run of job records.
    let Record::Job(dead) = &lives[0][4] else {
        unreachable!()
    };
    out.push(Record::Job(JobEvent {
        reset: true,
        attempts: 0,
        status: JobStatus::Waiting,
        error: None,
        result: None,
        run_id: None,
        finished_at: None,
        retry_at: None,
        ..dead.clone()
    }));
    out.push(lives[3][1].clone());
    out
}

/// Every row of `jobs` and `job_runs` but the time of the write, as JSON, in key order.
async fn rows(store: &Store) -> (Vec<Value>, Vec<Value>) {
    let jobs: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(j) - 'updated_at' FROM jobs j ORDER BY job_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let runs: Vec<Value> = sqlx::query_scalar("SELECT to_jsonb(r) FROM job_runs r ORDER BY run_id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    (jobs, runs)
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .to_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_at_once_leaves_the_rows_one_by_one_writes_leave() {
    let records = records();
    let (at_once, one_by_one) = tokio::join!(TestStore::new(), TestStore::new());
    at_once.store.apply(&records).await.unwrap();
    for r in &records {
        one_by_one
            .store
            .apply(std::slice::from_ref(r))
            .await
            .unwrap();
    }
    let (jobs, runs) = rows(&at_once.store).await;
    let (want_jobs, want_runs) = rows(&one_by_one.store).await;
    assert_eq!(jobs.len(), 12);
    assert_eq!(runs.len(), 24, "two runs for each of the twelve jobs");
    assert_eq!(jobs, want_jobs);
    assert_eq!(runs, want_runs);

    // And what one by one means, spelled out for three of them.
    let row = |id: &str| jobs.iter().find(|j| j["job_id"] == id).unwrap().clone();
    let reset = row("01BATCH0000");
    assert_eq!(
        (reset["status"].as_str(), reset["attempts"].as_i64()),
        (Some("waiting"), Some(0)),
        "the reset applied over the dead row"
    );
    let replayed = row("01BATCH0001");
    assert_eq!(
        (replayed["status"].as_str(), replayed["attempts"].as_i64()),
        (Some("done"), Some(2)),
        "a late replay of a first run moved nothing back"
    );
    assert_eq!(
        replayed["result"],
        json!({"n": 1, "text": "it's \"quoted\""})
    );
    assert_eq!(time(&replayed["finished_at"]), at(161));
    let dead = row("01BATCH0003");
    assert_eq!(dead["status"], "dead");
    assert_eq!(dead["error_kind"], "timeout");
    assert_eq!(dead["error_message"], "job 3 ran out of time");
    assert_eq!(dead["org_id"], "beta");
    assert_eq!(time(&dead["enqueued_at"]), at(300));

    // Each run keeps its own git steps and sandbox, as the store reads them back.
    let runs = at_once.store.runs_of("01BATCH0003").await.unwrap();
    let got: Vec<_> = runs
        .iter()
        .map(|r| {
            (
                r.attempt,
                r.sandbox_id.as_deref(),
                r.git_steps.clone(),
                r.git_steps_dropped,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, Some("s"), Some(steps(3, 1).steps), 1),
            (2, Some("s"), Some(steps(3, 2).steps), 2),
        ]
    );
    // A spooled record keeps them too (a JSON line, read back as it was).
    let ended = records
        .iter()
        .find(|r| matches!(r, Record::Job(j) if j.git_steps.is_some()))
        .unwrap();
    let line = serde_json::to_string(ended).unwrap();
    assert_eq!(&serde_json::from_str::<Record>(&line).unwrap(), ended);
}
