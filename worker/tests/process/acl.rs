//! The Redis ACL users of docs/redis-users.acl are enough to run the fleet, and keep each role
//! to the fleet's keys and away from Redis's administration: a real redis-server loads that
//! file, a `gitfleet-worker` runs as its worker user, the client as its producer user.

use std::time::Duration;

use gitfleet_client::{EnqueueOptions, JobSpec, JobStatus};
use serde_json::json;

use crate::processes::{ProcessFleet, RedisServer};

const ACL: &str = include_str!("../../../docs/redis-users.acl");

fn url(server: &RedisServer, user: &str, password: &str) -> String {
    server
        .url()
        .replacen("redis://", &format!("redis://{user}:{password}@"), 1)
}

#[tokio::test]
async fn the_documented_acl_users_run_the_fleet_and_reach_nothing_else() {
    let acl = ACL
        .replace("<worker-password>", "w-secret-1")
        .replace("<scheduler-password>", "s-secret-2")
        .replace("<producer-password>", "p-secret-3")
        // The key pattern, for this test's prefix (`test-process-<ulid>:`) instead of the
        // default `gitfleet:`.
        .replace("~gitfleet:*", "~test-process-*");
    assert!(
        acl.contains("~test-process-*"),
        "the file confines users to a prefix"
    );
    let redis = RedisServer::start_with_acl(&acl).await;
    let producer = url(&redis, "gitfleet-producer", "p-secret-3");
    let q = ProcessFleet::on(&producer).await;
    let w = q
        .spawn_worker(&[(
            "GITFLEET_REDIS_URL",
            &url(&redis, "gitfleet-worker", "w-secret-1"),
        )])
        .await;
    q.wait_until_registered(&w.id).await;

    // The whole path: enqueue with an idempotency key, run, wait, read back, queue stats.
    let options = EnqueueOptions {
        org: Some("acme".into()),
        idempotency_key: Some("acl-1".into()),
        ..Default::default()
    };
    let job = q
        .client
        .submit("jobs", &JobSpec::new("echo", json!({"n": 7})), &options)
        .await
        .expect("the producer user enqueues");
    let done = q
        .client
        .wait(&job.job_id, Duration::from_secs(30))
        .await
        .expect("the producer user waits")
        .expect("the job is there");
    assert_eq!(done.status, JobStatus::Done, "{done:?}\n{}", w.log_text());
    assert_eq!(done.result, Some(json!({"n": 7})));
    let stats = q
        .client
        .queues()
        .await
        .expect("the producer user reads stats");
    assert!(
        stats.iter().any(|s| s.queue == "jobs" && s.done == 1),
        "{stats:?}"
    );

    // What none of the users may do: administer Redis, wipe it, or touch other keys.
    for (user, password) in [
        ("gitfleet-producer", "p-secret-3"),
        ("gitfleet-worker", "w-secret-1"),
        ("gitfleet-scheduler", "s-secret-2"),
    ] {
        let client = redis::Client::open(url(&redis, user, password)).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        for cmd in [
            redis::cmd("CONFIG").arg("GET").arg("*").clone(),
            redis::cmd("FLUSHALL").clone(),
            redis::cmd("KEYS").arg("*").clone(),
            redis::cmd("SET").arg("elsewhere:key").arg("x").clone(),
            redis::cmd("GET").arg("elsewhere:key").clone(),
            redis::cmd("ACL").arg("LIST").clone(),
        ] {
            let refused = cmd.query_async::<redis::Value>(&mut conn).await;
            let err = refused.expect_err(&format!("{user} ran {cmd:?}"));
            assert_eq!(err.code(), Some("NOPERM"), "{user}: {cmd:?}: {err}");
        }
    }
    // Nor does anything reach it without a user.
    let anonymous = redis::Client::open(redis.url()).unwrap();
    let mut conn = anonymous.get_multiplexed_async_connection().await.unwrap();
    let err = redis::cmd("GET")
        .arg(q.client.queue().keys().job(&job.job_id))
        .query_async::<redis::Value>(&mut conn)
        .await
        .expect_err("the default user is off");
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
}
