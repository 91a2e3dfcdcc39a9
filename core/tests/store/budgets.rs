//! Budgets: an organization over its monthly budget has its jobs refused `budget_exceeded`,
//! at enqueue and by the worker (from the worker's first job on), and runs again once its
//! budget is raised; other organizations are left alone.

use std::time::Duration;

use chrono::Utc;
use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_testkit::postgres::PgServer;
use gitfleet_testkit::store::store_on;
use gitfleet_testkit::{Fleet, TestStore, eventually};
use serde_json::json;

use crate::{fleet, wait_final};

/// An organization over budget is refused at enqueue and by the worker, which has read the
/// list before its first job; other organizations run; a raised budget lets it run again.
#[tokio::test]
async fn a_budget_stops_an_orgs_jobs_with_budget_exceeded_and_leaves_other_orgs_alone() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    // "broke" used one sandbox for 10 hours this month: 10 × $0.015 = $0.15, over its $0.10.
    // "rich" used as much and has no budget (unlimited); "thrifty" has room left.
    let now = Utc::now();
    for (sandbox, org) in [("w.1", "broke"), ("w.2", "rich"), ("w.3", "thrifty")] {
        sqlx::query(
            "INSERT INTO sandbox_usage VALUES ($1, $2, 'w', $3, $4, 36000, 36000 / 3600.0 * 0.015)",
        )
        .bind(sandbox)
        .bind(org)
        .bind(now - chrono::Duration::hours(10))
        .bind(now)
        .execute(store.pool())
        .await
        .unwrap();
    }
    store.set_budget("broke", Some(0.10)).await.unwrap();
    store.set_budget("thrifty", Some(5.0)).await.unwrap();
    let orgs = store.orgs().await.unwrap();
    let broke = orgs.iter().find(|o| o.org_id == "broke").unwrap();
    assert!((broke.spend_usd - 0.15).abs() < 1e-9, "{broke:?}");
    assert!(broke.over_budget());
    assert!(
        orgs.iter()
            .filter(|o| o.org_id != "broke")
            .all(|o| !o.over_budget())
    );

    // At enqueue time (what the client and CLI ask).
    let err = store.check_budget("broke", "echo").await.unwrap_err();
    assert!(err.to_string().contains("broke"), "{err}");
    store.check_budget("rich", "echo").await.unwrap();
    store.check_budget("thrifty", "echo").await.unwrap();
    store.check_budget("never-seen", "echo").await.unwrap();
    store
        .check_budget("broke", "release")
        .await
        .expect("release still runs: it ends the spending");

    // And by the worker, for a job that got past the enqueue check (here: enqueued straight
    // into Redis, as another language's producer would). The jobs are waiting before the
    // worker starts, so its very first fetch takes them: a worker that served before it had
    // read the list of organizations over budget would run the broke ones.
    let mut broke_ids = Vec::new();
    for _ in 0..5 {
        broke_ids.push(enqueue_for(&q, "broke").await);
    }
    let others = [
        enqueue_for(&q, "rich").await,
        enqueue_for(&q, "thrifty").await,
    ];
    let worker = q.add_worker().await;
    for id in &broke_ids {
        let job = wait_final(q.queue(), id).await;
        assert_eq!(job.status, JobStatus::Dead, "{job:?}");
        assert_eq!(job.error.as_ref().unwrap().kind, ErrorKind::BudgetExceeded);
        assert_eq!(job.attempts, 1, "budget_exceeded is never retried");
    }
    for id in &others {
        assert_eq!(wait_final(q.queue(), id).await.status, JobStatus::Done);
    }
    let row = eventually("the refused job's row", Duration::from_secs(10), || async {
        store
            .job_history(&broke_ids[0])
            .await
            .unwrap()
            .filter(|h| h.job.status == "dead")
    })
    .await;
    assert_eq!(row.job.error_kind.as_deref(), Some("budget_exceeded"));

    // Raising the budget lets the organization run again, once the worker has re-read the
    // list (every 100 ms here): each look is a new job of the organization, until one runs.
    store.set_budget("broke", Some(1.0)).await.unwrap();
    eventually(
        "a job of the organization to run",
        Duration::from_secs(20),
        async || {
            let job = wait_final(q.queue(), &enqueue_for(&q, "broke").await).await;
            match job.status {
                JobStatus::Done => Ok(()),
                _ => Err(format!("{job:?}")),
            }
        },
    )
    .await;
    q.stop_worker(&worker).await;
}

/// An `echo` job of organization `org`, enqueued straight into Redis (no budget check).
async fn enqueue_for(q: &Fleet, org: &str) -> String {
    let options = EnqueueOptions {
        org: Some(org.into()),
        ..Default::default()
    };
    q.queue()
        .enqueue("jobs", &JobSpec::new("echo", json!({})), &options)
        .await
        .unwrap()
        .job_id
}

/// Postgres away when a worker starts: workers run without Postgres, so it starts and
/// serves every organization, one over budget too (the client checked at submit; the
/// worker cannot know better yet); once Postgres answers, the worker reads the list and
/// refuses that organization's jobs.
#[tokio::test]
async fn a_worker_started_while_postgres_is_away_refuses_an_org_over_budget_once_it_is_back() {
    let pg = PgServer::start().unwrap();
    let store = store_on(&pg.url());
    store.migrate().await.unwrap();
    store.set_budget("broke", Some(0.0)).await.unwrap();
    store.check_budget("broke", "echo").await.unwrap_err();
    pg.stop().unwrap();

    let mut q = fleet(&store, None).start().await;
    let worker = q.add_worker().await;
    let job = wait_final(q.queue(), &enqueue_for(&q, "broke").await).await;
    assert_eq!(
        job.status,
        JobStatus::Done,
        "served without Postgres: {job:?}"
    );

    pg.start_again().unwrap();
    let refused = eventually(
        "the organization's jobs to be refused",
        Duration::from_secs(30),
        async || {
            let job = wait_final(q.queue(), &enqueue_for(&q, "broke").await).await;
            match job.status {
                JobStatus::Dead => Ok(job),
                _ => Err(format!("{job:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        refused.error.as_ref().unwrap().kind,
        ErrorKind::BudgetExceeded,
        "{refused:?}"
    );
    q.stop_worker(&worker).await;
}
