//! Actions on dead and delayed jobs through the gateway (delete, run now, and retry, delete
//! or run now for every job matching a filter, with its dry run), the audit log they
//! write, and the history's search, order and total.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gitfleet_contract::Role;
use gitfleet_testkit::eventually;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{World, world};

async fn create(w: &World, key: &str, job: Value) -> String {
    let a = w.post(key, "/v1/jobs", &job).await;
    assert_eq!(a.status, 201, "{job}: {}", a.text);
    a.body["job_id"].as_str().unwrap().to_string()
}

/// A job that dies at once: a sleep past its timeout, one attempt.
async fn dead(w: &World, key: &str) -> String {
    let id = create(
        w,
        key,
        json!({"op": "sleep", "args": {"ms": 1000}, "timeout_secs": 0.05, "max_attempts": 1}),
    )
    .await;
    let a = w.get(key, &format!("/v1/jobs/{id}?wait=30")).await;
    assert_eq!(a.body["status"], "dead", "{}", a.text);
    id
}

/// The public id of a key (`gfk_<id>_<secret>`).
fn key_id(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

/// The audit entries `key` may read, newest first, once `n` are there.
async fn audit(w: &World, key: &str, query: &str, n: usize) -> Vec<Value> {
    eventually("the audit entries", Duration::from_secs(20), async || {
        let a = w.get(key, &format!("/v1/audit?limit=500{query}")).await;
        let entries = a.body["entries"].as_array().cloned().unwrap_or_default();
        (entries.len() >= n).then_some(entries).ok_or(a.text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_by_filter_puts_back_exactly_the_dry_runs_jobs_and_leaves_another_orgs() {
    let w = world().await;
    let operator = w.key("acme", Role::Operator).await;
    let other = w.key("other", Role::Operator).await;
    let mut redis = w.fleet.test_queue().redis().await;
    let keys = w.fleet.queue().keys().clone();
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(dead(&w, &operator).await);
    }
    let theirs = [dead(&w, &other).await, dead(&w, &other).await];
    // One of ours of another op that dies: a clone of a port nobody listens on.
    let clone = create(
        &w,
        &operator,
        json!({"op": "clone", "max_attempts": 1, "args": {"repo_url": "git://127.0.0.1:9/none.git",
               "agent_id": "a", "task_id": "t"}}),
    )
    .await;
    let a = w.get(&operator, &format!("/v1/jobs/{clone}?wait=60")).await;
    assert_eq!(a.body["status"], "dead", "{}", a.text);
    let mut snapshot = HashMap::new();
    for id in &theirs {
        let h: HashMap<String, String> = redis.hgetall(keys.job(id)).await.unwrap();
        snapshot.insert(id.clone(), h);
    }
    let dead_before: u64 = redis.zcard(keys.dead("jobs")).await.unwrap();
    assert_eq!(dead_before, 8);

    let request = |dry_run: bool, expect: Option<u64>| {
        let mut r = json!({"action": "retry", "filter": {"state": "dead", "op": "sleep"},
                           "dry_run": dry_run});
        if let Some(n) = expect {
            r["expect"] = json!(n);
        }
        r
    };
    // The dry run counts ours only and changes nothing.
    let dry = w
        .post(&operator, "/v1/jobs/actions", &request(true, None))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(
        (dry.body["matched"].as_u64(), dry.body["acted"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(redis.zcard::<_, u64>(keys.dead("jobs")).await.unwrap(), 8);
    for id in &mine {
        let s: String = redis.hget(keys.job(id), "status").await.unwrap();
        assert_eq!(s, "dead");
    }
    // A dry run is the default; the admin's counts every organization's.
    let admin = w.key("root", Role::Admin).await;
    let a = w
        .post(
            &admin,
            "/v1/jobs/actions",
            &json!({"action": "retry", "filter": {"state": "dead"}}),
        )
        .await;
    assert_eq!(a.body["matched"], 8, "{}", a.text);

    // Refusals: no confirmation, a count that grew, roles, another organization, bad filters.
    let a = w
        .post(&operator, "/v1/jobs/actions", &request(false, None))
        .await;
    assert_eq!(a.problem(400, "invalid_input")["field"], "expect");
    let a = w
        .post(&operator, "/v1/jobs/actions", &request(false, Some(4)))
        .await;
    assert_eq!(a.problem(409, "conflict")["field"], "expect");
    assert!(a.text.contains("5 jobs match"), "{}", a.text);
    for role in [Role::Viewer, Role::Producer] {
        let k = w.key("acme", role).await;
        w.post(&k, "/v1/jobs/actions", &request(true, None))
            .await
            .problem(403, "auth");
    }
    let a = w
        .post(
            &operator,
            "/v1/jobs/actions",
            &json!({"action": "retry", "filter": {"state": "dead", "org": "other"}}),
        )
        .await;
    assert_eq!(a.problem(403, "auth")["field"], "filter.org");
    for (body, field) in [
        (
            json!({"action": "retry", "filter": {"state": "running"}}),
            "filter.state",
        ),
        (
            json!({"action": "run_now", "filter": {"state": "dead"}}),
            "action",
        ),
        (
            json!({"action": "retry", "filter": {"state": "dead", "op": "nope"}}),
            "filter.op",
        ),
        (
            json!({"action": "retry", "filter": {"state": "dead", "queue": "Bad Queue"}}),
            "filter.queue",
        ),
        (
            json!({"action": "retry", "filter": {"state": "dead", "since": "2026-01-02T00:00:00Z",
                "until": "2026-01-01T00:00:00Z"}}),
            "filter.until",
        ),
        (
            json!({"action": "retry", "filter": {"state": "dead", "colour": "red"}}),
            "filter",
        ),
        (
            json!({"action": "explode", "filter": {"state": "dead"}}),
            "action",
        ),
    ] {
        let a = w.post(&operator, "/v1/jobs/actions", &body).await;
        let p = a.problem(400, "invalid_input");
        assert!(
            p["field"].as_str().is_some_and(|f| f.starts_with(field)),
            "{body}: {}",
            a.text
        );
    }
    assert_eq!(
        redis.zcard::<_, u64>(keys.dead("jobs")).await.unwrap(),
        8,
        "nothing done"
    );

    // The action, confirmed: exactly our five go back, and each runs (and dies) once more.
    let a = w
        .post(&operator, "/v1/jobs/actions", &request(false, Some(5)))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["acted"].as_u64(), a.body["skipped"].as_u64()),
        (Some(5), Some(0))
    );
    let acted: HashSet<String> = a.body["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(acted, mine.iter().cloned().collect());
    for id in &mine {
        eventually(
            "the retried job ran once more",
            Duration::from_secs(30),
            async || {
                let h = w
                    .fleet
                    .store()
                    .job_history(id)
                    .await
                    .map_err(|e| e.to_string())?;
                let runs = h.map(|h| h.runs.len()).unwrap_or(0);
                let r = w.get(&operator, &format!("/v1/jobs/{id}")).await;
                (runs == 2 && r.body["status"] == "dead" && r.body["attempts"] == 1)
                    .then_some(())
                    .ok_or(format!("{runs} runs: {}", r.text))
            },
        )
        .await;
    }
    // Another organization's dead jobs: untouched, byte for byte; our clone too.
    for (id, was) in &snapshot {
        let now: HashMap<String, String> = redis.hgetall(keys.job(id)).await.unwrap();
        assert_eq!(&now, was, "{id}");
        assert!(
            redis
                .zscore::<_, _, Option<f64>>(keys.dead("jobs"), id)
                .await
                .unwrap()
                .is_some()
        );
    }
    let s: String = redis.hget(keys.job(&clone), "status").await.unwrap();
    assert_eq!(s, "dead");

    // The audit log: the action, the refused one, who did them (never the key).
    let entries = audit(&w, &operator, "&action=jobs.retry", 2).await;
    let ok = entries
        .iter()
        .find(|e| e["outcome"] == "ok")
        .expect("the action");
    assert_eq!(ok["key_id"], key_id(&operator));
    assert_eq!(ok["key_name"], "test");
    assert_eq!(ok["key_role"], "operator");
    assert_eq!(ok["key_org"], "acme");
    assert_eq!(ok["org_id"], "acme");
    assert_eq!(ok["surface"], "api");
    assert_eq!(
        (ok["matched"].as_i64(), ok["affected"].as_i64()),
        (Some(5), Some(5))
    );
    assert_eq!(ok["filter"], json!({"state": "dead", "op": "sleep"}));
    let logged: HashSet<String> = ok["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, acted);
    assert!(
        entries.iter().any(|e| e["outcome"] == "conflict"),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e["outcome"] == "auth"),
        "a refused role is logged"
    );
    let all = w.get(&admin, "/v1/audit?limit=500").await;
    for token in [&operator, &other, &admin] {
        let secret = token.rsplit('_').next().unwrap();
        assert!(
            !all.text.contains(secret),
            "a key's secret in the audit log"
        );
    }
    // Another organization's operator sees none of acme's entries; a viewer none at all.
    let theirs_log = w.get(&other, "/v1/audit").await;
    assert_eq!(theirs_log.status, 200, "{}", theirs_log.text);
    assert!(
        theirs_log.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["org_id"] == "other")
    );
    let viewer = w.key("acme", Role::Viewer).await;
    w.get(&viewer, "/v1/audit").await.problem(403, "auth");
    w.get(&other, "/v1/audit?org=acme")
        .await
        .problem(403, "auth");
    let a = w
        .get(&admin, "/v1/audit?org=acme&action=jobs.retry&limit=1")
        .await;
    assert_eq!(a.body["entries"].as_array().unwrap().len(), 1, "{}", a.text);
    let next = a.body["next"].as_str().expect("a next page").to_string();
    let b = w.get(&admin, &next).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_ne!(b.body["entries"][0]["id"], a.body["entries"][0]["id"]);
    w.get(&admin, "/v1/audit?action=nope")
        .await
        .problem(400, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_a_dead_job_and_marks_its_row_and_run_now_runs_a_delayed_job_early() {
    let w = world().await;
    let operator = w.key("acme", Role::Operator).await;
    let mut redis = w.fleet.test_queue().redis().await;
    let keys = w.fleet.queue().keys().clone();
    let id = dead(&w, &operator).await;

    // Delete: gone from Redis, its row marked; from the dashboard's surface.
    let viewer = w.key("acme", Role::Viewer).await;
    w.post(&viewer, &format!("/v1/jobs/{id}/delete"), &json!({}))
        .await
        .problem(403, "auth");
    let a = w
        .send(
            w.http
                .post(w.gw.url(&format!("/v1/jobs/{id}/delete")))
                .bearer_auth(&operator)
                .header("gitfleet-surface", "ui"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "dead", "what it was: {}", a.text);
    assert!(!redis.exists::<_, bool>(keys.job(&id)).await.unwrap());
    assert!(
        redis
            .zscore::<_, _, Option<f64>>(keys.dead("jobs"), &id)
            .await
            .unwrap()
            .is_none()
    );
    eventually(
        "the row is marked deleted",
        Duration::from_secs(20),
        async || {
            let row = w
                .fleet
                .store()
                .job_row(&id)
                .await
                .map_err(|e| e.to_string())?;
            row.filter(|r| r.deleted_at.is_some() && r.status == "dead")
                .map(|_| ())
                .ok_or("not yet".to_string())
        },
    )
    .await;
    let listed = w.get(&operator, &format!("/v1/jobs?id={id}")).await;
    assert!(
        listed.body["jobs"][0]["deleted_at"].is_string(),
        "{}",
        listed.text
    );

    // Run now: a job due in ten minutes runs at once.
    let later = create(
        &w,
        &operator,
        json!({"op": "echo", "args": {"x": 1}, "delay_secs": 600}),
    )
    .await;
    let started = Instant::now();
    let a = w
        .post(&operator, &format!("/v1/jobs/{later}/run-now"), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let done = w.get(&operator, &format!("/v1/jobs/{later}?wait=30")).await;
    assert_eq!(done.body["status"], "done", "{}", done.text);
    assert!(started.elapsed() < Duration::from_secs(60));
    // A delayed job deleted never runs, and its row ends cancelled.
    let parked = create(&w, &operator, json!({"op": "echo", "delay_secs": 600})).await;
    let a = w
        .post(&operator, &format!("/v1/jobs/{parked}/delete"), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    eventually(
        "the delayed job's row is cancelled",
        Duration::from_secs(20),
        async || {
            let row = w
                .fleet
                .store()
                .job_row(&parked)
                .await
                .map_err(|e| e.to_string())?;
            row.filter(|r| r.deleted_at.is_some() && r.status == "cancelled")
                .map(|_| ())
                .ok_or("not yet".to_string())
        },
    )
    .await;
    // States they do not take: 409; another organization's job: 404; a bad surface: 400.
    w.post(&operator, &format!("/v1/jobs/{later}/run-now"), &json!({}))
        .await
        .problem(409, "conflict");
    w.post(&operator, &format!("/v1/jobs/{later}/delete"), &json!({}))
        .await
        .problem(409, "conflict");
    let stranger = w.key("other", Role::Operator).await;
    let theirs = create(&w, &stranger, json!({"op": "echo", "delay_secs": 600})).await;
    w.post(&operator, &format!("/v1/jobs/{theirs}/run-now"), &json!({}))
        .await
        .problem(404, "not_found");
    let s: String = redis.hget(keys.job(&theirs), "status").await.unwrap();
    assert_eq!(s, "delayed");
    let a = w
        .send(
            w.http
                .post(w.gw.url(&format!("/v1/jobs/{theirs}/retry")))
                .bearer_auth(&stranger)
                .header("gitfleet-surface", "cli"),
        )
        .await;
    assert_eq!(a.problem(400, "invalid_input")["field"], "Gitfleet-Surface");

    // The audit log has each, with its surface.
    let entries = audit(&w, &operator, "", 5).await;
    let find = |action: &str, job: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["job_ids"] == json!([job]) && e["outcome"] == "ok")
            .unwrap_or_else(|| panic!("no {action} of {job}: {entries:?}"))
            .clone()
    };
    let deleted = find("job.delete", &id);
    assert_eq!(
        (deleted["surface"].as_str(), deleted["outcome"].as_str()),
        (Some("ui"), Some("ok"))
    );
    assert_eq!(deleted["key_id"], key_id(&operator));
    assert_eq!(find("job.run_now", &later)["surface"], "api");
    assert_eq!(find("job.delete", &parked)["org_id"], "acme");
    assert!(
        entries.iter().any(|e| e["action"] == "job.run_now"
            && e["job_ids"] == json!([later])
            && e["outcome"] == "conflict"),
        "the refused run-now of a done job is logged"
    );
    assert!(entries.iter().any(|e| e["action"] == "job.delete"
        && e["outcome"] == "auth"
        && e["key_role"] == "viewer"));
    let by_job = w.get(&operator, &format!("/v1/audit?job={id}")).await;
    assert_eq!(
        by_job.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        by_job.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_searched_by_error_text_through_its_trigram_index_with_a_marked_total() {
    let w = world().await;
    let viewer = w.key("acme", Role::Viewer).await;
    let pool = w.fleet.store().pool().clone();
    // History enough that the planner has choices: 12,000 finished rows of acme's, their
    // errors made of ordinary words; one of them says something no other does.
    sqlx::query(
        "INSERT INTO jobs (job_id, op, queue, org_id, status, attempts, phase, error_kind, \
                           error_message, enqueued_at, finished_at, updated_at)
         SELECT 'H' || lpad(i::text, 25, '0'), 'push', 'jobs', 'acme', 'dead', 1, 3, 'network', \
                'push rejected by remote after ' || i || ' tries (100% sure_thing)', \
                now() - i * interval '1 second', now() - i * interval '1 second' + interval '10 ms', now()
           FROM generate_series(1, 12000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET error_message = 'fatal: Needle-In-Haystack refused' \
          WHERE job_id = 'H' || lpad('777', 25, '0')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
    let needle = format!("H{:0>25}", 777);

    // Found by text, case-insensitively; the total is exact.
    let a = w.get(&viewer, "/v1/jobs?q=needle-in-hay").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ids: Vec<&str> = a.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [needle.as_str()]);
    assert_eq!(
        (
            a.body["total"].as_i64(),
            a.body["total_is_estimate"].as_bool()
        ),
        (Some(1), Some(false))
    );
    // `%` and `_` are the text's own, not wildcards.
    let a = w
        .get(&viewer, "/v1/jobs?q=100%25%20sure_thing&limit=1")
        .await;
    assert_eq!(
        a.body["total"],
        11_999,
        "{}",
        &a.text[..300.min(a.text.len())]
    );
    let a = w.get(&viewer, "/v1/jobs?q=100x%20sure").await;
    assert_eq!(a.body["total"], 0);
    // The whole history: over 10,000, so an estimate, marked as one.
    let a = w.get(&viewer, "/v1/jobs?limit=1").await;
    assert_eq!(a.body["total_is_estimate"], true, "{}", a.text);
    assert!(a.body["total"].as_i64().unwrap() > 10_000, "{}", a.text);
    // By id: exact, and by prefix.
    let a = w.get(&viewer, &format!("/v1/jobs?id={needle}")).await;
    assert_eq!(a.body["total"], 1, "{}", a.text);
    let tens = format!("H{}1", "0".repeat(23));
    let a = w.get(&viewer, &format!("/v1/jobs?id={tens}")).await;
    assert_eq!(
        a.body["total"],
        10,
        "H…0010 to H…0019: {}",
        &a.text[..300.min(a.text.len())]
    );

    // The planner can serve the search from the trigram index: with sequential scans priced
    // out and no order to tempt a walk of a B-tree, the plan names the GIN index, and only
    // because it can serve `ILIKE '%…%'` (no B-tree can; without the index the plan is a
    // sequential scan all the same). On a table this small the planner may still prefer
    // the organization's B-tree when one applies, so the check leaves it out.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let plan: Vec<(String,)> =
        sqlx::query_as("EXPLAIN SELECT job_id FROM jobs WHERE error_message ILIKE $1")
            .bind("%needle-in-hay%")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    let plan: String = plan.into_iter().map(|(l,)| l + "\n").collect();
    assert!(plan.contains("jobs_error_trgm_idx"), "{plan}");
    tx.rollback().await.unwrap();

    // Sorted by finish time, oldest first, paged by cursor: in order, each once.
    let mut seen: Vec<String> = Vec::new();
    let hundreds = format!("H{}1", "0".repeat(22));
    let mut path = format!("/v1/jobs?id={hundreds}&sort=finished_asc&limit=30");
    loop {
        let a = w.get(&viewer, &path).await;
        assert_eq!(a.status, 200, "{}", a.text);
        for j in a.body["jobs"].as_array().unwrap() {
            seen.push(j["job_id"].as_str().unwrap().to_string());
        }
        match a.body["next"].as_str() {
            Some(n) => path = n.to_string(),
            None => break,
        }
    }
    // H…100 to H…199: the older (larger i) first.
    assert_eq!(seen.len(), 100);
    let n = |id: &str| id[1..].parse::<u64>().unwrap();
    assert!(
        seen.windows(2).all(|p| n(&p[0]) > n(&p[1])),
        "oldest finished first"
    );
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 100);
    // A cursor of one order with another, and bad search input, are named.
    let a = w
        .get(
            &viewer,
            &format!("/v1/jobs?id={hundreds}&sort=finished_asc&limit=5"),
        )
        .await;
    let next = a.body["next"]
        .as_str()
        .unwrap()
        .replace("sort=finished_asc", "sort=finished_desc");
    assert_eq!(
        w.get(&viewer, &next).await.problem(400, "invalid_input")["field"],
        "cursor"
    );
    for (q, field) in [("q=ab", "q"), ("id=not-an-id", "id"), ("sort=size", "sort")] {
        let a = w.get(&viewer, &format!("/v1/jobs?{q}")).await;
        assert_eq!(a.problem(400, "invalid_input")["field"], field, "{q}");
    }
}
