//! A `gitfleet-worker` never logs the passwords in its Redis and Postgres URLs: not while it
//! starts, runs jobs, records them and stops, not when Redis refuses its password, and not
//! when its database is missing. The Redis is one of the test's own that demands a password;
//! the machine's Postgres trusts every local connection, so a password in its URL is accepted
//! and only has to be kept out of the logs.

use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_testkit::postgres::with_password;
use gitfleet_testkit::{RedisServer, TestStore, eventually};
use serde_json::json;

use crate::processes::ProcessFleet;

const REDIS_PASSWORD: &str = "redis-pw-Vq81xT";
const PG_PASSWORD: &str = "pg-pw-Lm27cK";

fn assert_no_password(log: &str) {
    assert!(
        !log.contains(REDIS_PASSWORD),
        "the Redis password in a log:\n{log}"
    );
    assert!(
        !log.contains(PG_PASSWORD),
        "the Postgres password in a log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_logs_the_passwords_in_its_redis_and_postgres_urls() {
    let redis = RedisServer::start_with_password(REDIS_PASSWORD).await;
    let redis_url = redis.url_with_password(REDIS_PASSWORD);
    let q = ProcessFleet::on(&redis_url).await;
    let store = TestStore::new().await;
    let pg_url = with_password(store.url(), PG_PASSWORD);
    assert!(pg_url.contains(&format!(":{PG_PASSWORD}@")), "{pg_url}");

    // Working: a job run and recorded through both URLs, then a graceful stop.
    let mut w = q
        .spawn_worker(&[
            ("GITFLEET_DATABASE_URL", &pg_url),
            ("GITFLEET_LOG", "debug"),
        ])
        .await;
    let done = q.run_as(None, "jobs", "echo", json!({"n": 1})).await;
    assert_eq!(done.status, JobStatus::Done, "{done:?}\n{}", w.log_text());
    eventually("the job's row", Duration::from_secs(30), async || {
        store
            .store
            .job_row(&done.job_id)
            .await
            .map_err(|e| e.to_string())?
            .filter(|r| r.status == "done")
            .ok_or_else(|| "not recorded yet".to_string())
    })
    .await;
    w.sigterm();
    w.wait_exit(Duration::from_secs(30)).await;
    let log = w.log_text();
    for known in [
        w.id.as_str(),
        done.job_id.as_str(),
        "keeping the record in postgres",
        "worker stopped",
    ] {
        assert!(log.contains(known), "{known:?} in the log:\n{log}");
    }
    assert_no_password(&log);

    // Its database missing: the jobs still run, the writes fail, and the worker says so.
    let (base, _) = store.url().rsplit_once('/').expect("a database in the URL");
    let missing = with_password(
        &format!(
            "{base}/gitfleet_missing_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
        PG_PASSWORD,
    );
    let w = q
        .spawn_worker(&[
            ("GITFLEET_DATABASE_URL", &missing),
            ("GITFLEET_LOG", "debug"),
        ])
        .await;
    let done = q.run_as(None, "jobs", "echo", json!({"n": 2})).await;
    assert_eq!(done.status, JobStatus::Done, "{done:?}\n{}", w.log_text());
    w.wait_for_log("records: cannot write to postgres", Duration::from_secs(30))
        .await;
    assert_no_password(&w.log_text());
    drop(w);

    // Refused by Redis (a wrong password, the Postgres one: a word no log may show either):
    // the worker exits, naming the server.
    let wrong = redis.url_with_password(PG_PASSWORD);
    let (status, log) = q
        .worker_that_exits(&[("GITFLEET_REDIS_URL", &wrong)], Duration::from_secs(30))
        .await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot connect to Redis at"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{}", redis.port())),
        "{log}"
    );
    assert_no_password(&log);
}
