//! The commands on the durable record (`migrate`, `jobs`, `job`, `sandboxes`, `orgs`,
//! `schedule`) and the budget check at submit, against a database of the test's own.

use std::time::Duration;

use gitfleet_testkit::postgres::TestDatabase;
use gitfleet_testkit::{Fleet, eventually};
use serde_json::{Value, json};

use super::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_commands_print_tables_for_people_and_json_arrays_for_scripts() {
    let db = TestDatabase::create().unwrap();
    let mut env = Env::with_database(&db).await;

    // Several processes migrate at once; all succeed.
    let runs = (0..4).map(|_| env.run_json(&["migrate"]));
    for (code, v) in futures::future::join_all(runs).await {
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["migrated"], true);
    }

    let worker = env.fleet.add_worker().await;

    let (code, done) = env
        .run_json(&[
            "submit",
            "echo",
            r#"{"n":1}"#,
            "--org",
            "acme",
            "--wait",
            "--timeout",
            "10",
        ])
        .await;
    assert_eq!(code, 0, "{done}");
    let id = done["job_id"].as_str().unwrap().to_string();

    // `job`: the Redis record, plus the history once the worker's records are written.
    let mut shown = Value::Null;
    for _ in 0..100 {
        let (code, v) = env.run_json(&["job", &id]).await;
        assert_eq!(code, 0);
        if v["history"]["status"] == "done" {
            shown = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["status"], "done", "history never arrived: {shown}");
    assert_eq!(shown["result"], json!({"n": 1}));
    assert_eq!(
        shown["org"], "acme",
        "the envelope's organization is on the record"
    );
    let history = &shown["history"];
    assert_eq!(history["org_id"], "acme");
    assert_eq!(history["runs"].as_array().unwrap().len(), 1);
    assert_eq!(history["runs"][0]["outcome"], "done");
    assert_eq!(history["runs"][0]["worker_id"], worker.as_str());

    // `jobs`: a JSON array with filters, and a table.
    let (code, all) = env.run_json(&["jobs", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all[0]["job_id"], id.as_str());
    assert_eq!(all[0]["status"], "done");
    let (_, none) = env.run_json(&["jobs", "--status", "dead", "--json"]).await;
    assert_eq!(none, json!([]));
    let (_, by_org) = env
        .run_json(&[
            "jobs", "--org", "acme", "--op", "echo", "--limit", "5", "--json",
        ])
        .await;
    assert_eq!(by_org.as_array().unwrap().len(), 1);
    let (code, table) = env.run(&["jobs"], None).await;
    assert_eq!(code, 0);
    assert!(
        table[0].starts_with("JOB") && table[0].contains("STATUS"),
        "{table:?}"
    );
    assert!(
        table[1].starts_with(&id) && table[1].contains("done") && table[1].contains("acme"),
        "{table:?}"
    );
    let (code, bad) = env.run_json(&["jobs", "--status", "finished"]).await;
    assert_eq!(code, 2, "{bad}");

    // `orgs` and budgets: a budget of $0 is spent; the org's next job is refused at once.
    let (code, set) = env.run_json(&["orgs", "set-budget", "acme", "0"]).await;
    assert_eq!(code, 0, "{set}");
    assert_eq!(set["org_id"], "acme");
    assert_eq!(set["monthly_budget_usd"], 0.0);
    let (code, refused) = env
        .run_json(&["submit", "echo", "{}", "--org", "acme"])
        .await;
    assert_eq!(code, 5, "{refused}");
    assert_eq!(refused["error"]["kind"], "budget_exceeded");
    // Naming an organization in the args instead is refused, not taken for the identity.
    let (code, named) = env
        .run_json(&["submit", "echo", r#"{"org_id":"other"}"#, "--org", "acme"])
        .await;
    assert_eq!(code, 2, "{named}");
    assert!(
        named["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("args.org_id:"),
        "{named}"
    );
    let (code, other) = env
        .run_json(&["submit", "echo", "{}", "--org", "other", "--wait"])
        .await;
    assert_eq!(
        (code, other["status"].as_str()),
        (0, Some("done")),
        "{other}"
    );
    let (_, orgs) = env.run_json(&["orgs", "--json"]).await;
    assert_eq!(orgs[0]["org_id"], "acme");
    assert_eq!(orgs[0]["monthly_budget_usd"], 0.0);
    let (_, table) = env.run(&["orgs"], None).await;
    assert!(table[0].starts_with("ORG"), "{table:?}");
    assert!(
        table[1].starts_with("acme") && table[1].trim_end().ends_with("yes"),
        "{table:?}"
    );
    let (code, unlimited) = env.run_json(&["orgs", "set-budget", "acme", "none"]).await;
    assert_eq!(code, 0);
    assert_eq!(unlimited["monthly_budget_usd"], Value::Null);

    // `sandboxes` and `schedule`: empty here (no git ops; no scheduler yet), still tables.
    let (_, sandboxes) = env.run_json(&["sandboxes", "--json"]).await;
    assert_eq!(sandboxes, json!([]));
    let (_, table) = env.run(&["sandboxes", "--limit", "3"], None).await;
    assert!(table[0].starts_with("SANDBOX"), "{table:?}");
    let (_, schedule) = env.run_json(&["schedule", "--json"]).await;
    assert_eq!(schedule, json!([]));
    let (_, table) = env.run(&["schedule"], None).await;
    assert_eq!(table.len(), 1);
    assert!(table[0].starts_with("TASK"), "{table:?}");
    env.fleet.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_record_exits_4_without_showing_the_password() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .args(["jobs"])
        .env(
            "GITFLEET_DATABASE_URL",
            "postgres://bot:hunter2@127.0.0.1:1/x",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "network");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("postgres://***@127.0.0.1:1/x"),
        "{v}"
    );
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout} {stderr}"
    );
}

/// The record (Postgres) unreachable, at a closed loopback port: `submit` still enqueues
/// (the budget check fails open and the job's row is best effort: the worker that runs it
/// writes the record), one job and a bulk alike, for an organization; `job` still prints
/// the Redis record, without history. The jobs run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_with_the_record_unreachable_still_enqueues_and_the_jobs_run() {
    let mut env = Env::on(
        Fleet::builder("cli"),
        Some("postgres://postgres@127.0.0.1:1/gitfleet"),
    )
    .await;
    let (code, one) = env
        .run_json(&["submit", "echo", r#"{"n":1}"#, "--org", "acme"])
        .await;
    assert_eq!(code, 0, "{one}");
    assert_eq!(one["status"], "waiting", "{one}");
    let bulk = "{\"op\":\"echo\",\"args\":{\"n\":2}}\n{\"op\":\"echo\",\"args\":{\"n\":3}}\n";
    let (code, ids) = env
        .run(&["submit", "--bulk", "--org", "acme"], Some(bulk))
        .await;
    assert_eq!((code, ids.len()), (0, 2), "{ids:?}");
    let (_, queues) = env.run_json(&["queues"]).await;
    assert_eq!(
        queues,
        json!([{"queue": "jobs", "waiting": 3, "running": 0, "delayed": 0, "done": 0, "dead": 0,
                "cancelled": 0}])
    );

    env.fleet.add_worker().await;
    let all = [one["job_id"].as_str().unwrap(), &ids[0], &ids[1]];
    for (n, id) in (1..).zip(all) {
        let (code, v) = env
            .run_json(&["job", id, "--wait", "--timeout", "30"])
            .await;
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["status"], "done", "{v}");
        assert_eq!(v["result"], json!({ "n": n }), "{v}");
        assert_eq!(v["org"], "acme", "{v}");
        assert!(v.get("history").is_none(), "no record to read: {v}");
    }
    env.fleet.shutdown().await;
}

/// Once Redis has let a job's record expire, `job` builds it from Postgres alone: the same
/// object as from Redis (its organization too), with the history; a job done exits 0 with
/// its result, a job that died in a worker exits 1 with its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_is_built_from_postgres_alone_once_redis_let_the_record_expire() {
    let db = TestDatabase::create().unwrap();
    let mut env = Env::with_database(&db).await;
    env.fleet.add_worker().await;
    let (code, done) = env
        .run_json(&[
            "submit",
            "echo",
            r#"{"n":1}"#,
            "--org",
            "acme",
            "--wait",
            "--timeout",
            "30",
        ])
        .await;
    assert_eq!(code, 0, "{done}");
    let (code, dead) = env
        .run_json(&[
            "submit",
            "sleep",
            r#"{"ms": 60000}"#,
            "--timeout-ms",
            "100",
            "--max-attempts",
            "1",
            "--wait",
            "--timeout",
            "30",
        ])
        .await;
    assert_eq!((code, dead["status"].as_str()), (1, Some("dead")), "{dead}");

    let mut redis = env.fleet.test_queue().redis().await;
    for (redis_record, exit) in [(&done, 0), (&dead, 1)] {
        let id = redis_record["job_id"].as_str().unwrap();
        let store = env.fleet.store().clone();
        eventually("the job's final row", Duration::from_secs(20), async || {
            let h = store.job_history(id).await.map_err(|e| e.to_string())?;
            match h {
                Some(h)
                    if h.job.status == redis_record["status"]
                        && h.runs.iter().all(|r| r.outcome != "running") =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // Redis lets it expire (as GITFLEET_RESULT_TTL_SECS / GITFLEET_DEAD_TTL_SECS would).
        let key = format!("{}job:{id}", env.fleet.prefix());
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(1)
            .query_async(&mut redis)
            .await
            .unwrap();
        let queue = env.fleet.queue().clone();
        eventually(
            "the record to expire",
            Duration::from_secs(10),
            async || queue.job(id).await.map(|r| r.is_none()).unwrap_or(false),
        )
        .await;

        let (code, v) = env.run_json(&["job", id]).await;
        assert_eq!(code, exit, "{v}");
        let mut from_pg = v.as_object().unwrap().clone();
        let history = from_pg.remove("history").expect("a history");
        assert_eq!(history["job_id"], id);
        assert_eq!(history["runs"].as_array().unwrap().len(), 1, "{history}");
        // The times are the record's own (written by the producer and the worker, by their
        // clocks), not Redis's: each is there, with microseconds, but not equal.
        for field in ["enqueued_at", "started_at", "finished_at"] {
            super::assert_micros_time(&v, field);
            from_pg.remove(field);
        }
        let mut from_redis = redis_record.as_object().unwrap().clone();
        for field in ["enqueued_at", "started_at", "finished_at"] {
            from_redis.remove(field);
        }
        assert_eq!(from_pg, from_redis, "the same job as Redis showed");
    }
    env.fleet.shutdown().await;
}
