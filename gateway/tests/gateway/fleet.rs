//! Queues, workers, keys through the API; and an API key's secret never leaves the
//! response that created it.

use gitfleet_contract::Role;
use redis::AsyncCommands;
use serde_json::json;

use crate::support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_and_workers_are_listed_and_held_jobs_only_for_admins() {
    let w = world().await;
    let viewer = w.key("acme", Role::Viewer).await;
    let admin = w.key("root", Role::Admin).await;
    let producer = w.key("acme", Role::Producer).await;
    w.run_ok(&producer, json!({"op": "echo"})).await;
    let q = w.get(&viewer, "/v1/queues").await;
    assert_eq!(q.status, 200, "{}", q.text);
    let jobs = q.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "jobs")
        .cloned()
        .unwrap();
    assert_eq!(jobs["done"], 1, "{}", q.text);

    let a = w.get(&viewer, "/v1/workers").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let workers = a.body["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{}", a.text);
    assert_eq!(
        workers[0]["worker_id"].as_str(),
        w.fleet.worker_ids().first().copied(),
        "{}",
        a.text
    );
    assert_eq!(workers[0]["held"], json!([]));
    let a = w.get(&admin, "/v1/workers").await;
    assert_eq!(a.body["workers"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_keys_and_a_secret_is_shown_once_and_stored_nowhere() {
    let w = world().await;
    let admin = w.key("root", Role::Admin).await;
    let a = w
        .post(
            &admin,
            "/v1/keys",
            &json!({"org": "acme", "role": "producer", "name": "ci", "expires_days": 30}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let token = a.body["key"].as_str().unwrap().to_string();
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        (a.body["org"].as_str(), a.body["role"].as_str()),
        (Some("acme"), Some("producer"))
    );
    assert!(a.body["expires_at"].is_string(), "{}", a.text);
    let (_, secret) = gitfleet_client::store::parse_token(&token).unwrap();
    let secret = secret.to_string();

    // It works, is listed without its secret, then revoked stops working.
    let job = w
        .run_ok(&token, json!({"op": "echo", "args": {"x": 1}}))
        .await;
    assert_eq!(job, json!({"x": 1}));
    // When it was used is written back in the background (every 5 s).
    let listed = gitfleet_testkit::eventually(
        "the key's last use is recorded",
        std::time::Duration::from_secs(20),
        async || {
            let listed = w.get(&admin, "/v1/keys?org=acme").await;
            let ours = listed.body["keys"]
                .as_array()
                .and_then(|keys| keys.iter().find(|k| k["id"] == id.as_str()).cloned())
                .ok_or(listed.text.clone())?;
            (!ours["last_used_at"].is_null())
                .then_some(listed)
                .ok_or(ours.to_string())
        },
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(listed.text.contains(&id), "{}", listed.text);
    assert!(!listed.text.contains(&secret), "{}", listed.text);
    // Bad input names its field.
    let p = w
        .post(&admin, "/v1/keys", &json!({"org": "acme", "role": "king"}))
        .await;
    assert_eq!(
        p.problem(400, "invalid_input")["field"],
        "role",
        "{}",
        p.text
    );
    let p = w
        .post(
            &admin,
            "/v1/keys",
            &json!({"org": "acme", "role": "viewer", "expires_days": 0}),
        )
        .await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "expires_days");
    // A bad token is refused without being logged.
    let forged = format!("{}x", token);
    w.get(&forged, "/v1/queues").await.problem(401, "auth");

    assert_eq!(
        w.delete(&admin, &format!("/v1/keys/{id}")).await.status,
        204
    );
    // Revoking again changes nothing; a key that never was is 404.
    assert_eq!(
        w.delete(&admin, &format!("/v1/keys/{id}")).await.status,
        204
    );
    w.delete(&admin, "/v1/keys/0123456789abcdef")
        .await
        .problem(404, "not_found");
    gitfleet_testkit::eventually(
        "the revoked key is refused",
        std::time::Duration::from_secs(10),
        async || match w.get(&token, "/v1/queues").await.status {
            401 => Ok(()),
            s => Err(format!("{s}")),
        },
    )
    .await;

    // Nowhere but that one response: the gateway's log, ...
    let log = w.gw.log_text();
    assert!(
        log.contains("gateway listening"),
        "the log was captured: {log}"
    );
    assert!(!log.contains(&secret), "{log}");
    // ... Redis (every key of the fleet's prefix, read by its type), ...
    let mut redis = w.fleet.test_queue().redis().await;
    let keys: Vec<String> = redis.keys(format!("{}*", w.fleet.prefix())).await.unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut redis)
            .await
            .unwrap();
        let text = match kind.as_str() {
            "string" => redis.get::<_, String>(&k).await.unwrap_or_default(),
            "hash" => format!(
                "{:?}",
                redis.hgetall::<_, Vec<(String, String)>>(&k).await.unwrap()
            ),
            "list" => format!(
                "{:?}",
                redis.lrange::<_, Vec<String>>(&k, 0, -1).await.unwrap()
            ),
            "set" => format!("{:?}", redis.smembers::<_, Vec<String>>(&k).await.unwrap()),
            "zset" => format!(
                "{:?}",
                redis.zrange::<_, Vec<String>>(&k, 0, -1).await.unwrap()
            ),
            // A watched job's log of its changes (`job:<id>:events`): every entry's fields.
            "stream" => format!(
                "{:?}",
                redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async::<redis::Value>(&mut redis)
                    .await
                    .unwrap()
            ),
            other => panic!("{k}: unexpected type {other}"),
        };
        assert!(
            !text.contains(&secret) && !k.contains(&secret),
            "{k}: {text}"
        );
    }
    // ... and Postgres (every table, as text).
    let mut conn = w.fleet.store().connect_dedicated().await.unwrap();
    for table in ["api_keys", "jobs", "job_runs", "workers"] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        if table == "api_keys" {
            assert!(rows.len() >= 2, "{rows:?}");
        }
        for (row,) in rows {
            assert!(!row.contains(&secret), "{table}: {row}");
        }
    }
}
