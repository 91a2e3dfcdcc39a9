use std::time::Duration;

use chrono::Utc;
use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_testkit::{TestStore, eventually};
use serde_json::json;

use crate::{fleet, wait_final};

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
    // into Redis, as another language's producer would).
    let worker = q.add_worker().await;
    let mut ids = Vec::new();
    for org in ["broke", "rich", "thrifty"] {
        let spec = JobSpec::new("echo", json!({}));
        let options = EnqueueOptions {
            org: Some(org.into()),
            ..Default::default()
        };
        ids.push(
            q.queue()
                .enqueue("jobs", &spec, &options)
                .await
                .unwrap()
                .job_id,
        );
    }
    let broke_job = wait_final(q.queue(), &ids[0]).await;
    assert_eq!(broke_job.status, JobStatus::Dead);
    assert_eq!(
        broke_job.error.as_ref().unwrap().kind,
        ErrorKind::BudgetExceeded
    );
    assert_eq!(broke_job.attempts, 1, "budget_exceeded is never retried");
    for id in &ids[1..] {
        assert_eq!(wait_final(q.queue(), id).await.status, JobStatus::Done);
    }
    let row = eventually("the refused job's row", Duration::from_secs(10), || async {
        store
            .job_history(&ids[0])
            .await
            .unwrap()
            .filter(|h| h.job.status == "dead")
    })
    .await;
    assert_eq!(row.job.error_kind.as_deref(), Some("budget_exceeded"));

    // Raising the budget lets the organization run again (within the refresh interval).
    store.set_budget("broke", Some(1.0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let spec = JobSpec::new("echo", json!({}));
    let again = q
        .queue()
        .enqueue(
            "jobs",
            &spec,
            &EnqueueOptions {
                org: Some("broke".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        wait_final(q.queue(), &again.job_id).await.status,
        JobStatus::Done
    );
    q.stop_worker(&worker).await;
}
