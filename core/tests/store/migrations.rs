use gitfleet_testkit::postgres::TestDatabase;
use gitfleet_testkit::store::store_on;

#[tokio::test]
async fn migrations_apply_twice_and_from_many_tasks_at_once() {
    let db = TestDatabase::create().unwrap();
    // Eight stores (eight connections, as eight processes would have) race to migrate a
    // fresh database: sqlx's advisory lock lets one apply, the others find it done.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store_on(&db.url);
        tasks.push(tokio::spawn(async move { store.migrate().await }));
    }
    for t in tasks {
        t.await.unwrap().expect("every migrator succeeds");
    }
    let store = store_on(&db.url);
    store.migrate().await.expect("a second run is a no-op");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(applied, gitfleet_store::MIGRATOR.iter().count() as i64);
    for table in [
        "jobs",
        "job_runs",
        "git_sandboxes",
        "workers",
        "organizations",
        "sandbox_usage",
        "scheduler_runs",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("table {table}: {e}"));
        assert_eq!(n, 0);
    }
}
