//! The dashboard's job views in a real browser (`gateway/ui-tests/jobs.mjs`, Debian's
//! chromium through playwright-core) against the gateway binary, a worker and a git server
//! on loopback: the jobs list's search, sort and total; a job's git steps; the delayed and
//! dead views with their actions per job, for the ticked jobs, and for all matching a filter
//! (the dry run's count, its confirmation, a stale one refused); the audit log; and a
//! viewer, who sees no button and whose forged actions are refused.

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::fixtures;
use gitfleet_testkit::{GitDaemon, eventually};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::dashboard::{LIVE_MS, chromium, enqueue, node_modules, run_browser_script};
use crate::support::{World, world_with};

/// Waits for job `id` to end; its record.
async fn ended(w: &World, key: &str, id: &str) -> Value {
    let a = w.get(key, &format!("/v1/jobs/{id}?wait=60")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// A job that dies at once: a sleep past its time limit, one attempt.
async fn dead_sleep(w: &World, key: &str) -> String {
    let id = enqueue(
        w,
        key,
        json!({"op": "sleep", "args": {"ms": 1000}, "timeout_secs": 0.05, "max_attempts": 1}),
    )
    .await;
    assert_eq!(ended(w, key, &id).await["status"], "dead");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_views_search_show_git_steps_and_act_per_job_selected_and_by_filter() {
    chromium();
    tokio::task::spawn_blocking(node_modules)
        .await
        .expect("npm ci");
    let w = world_with(&[("GITFLEET_GATEWAY_UI_LIVE_MS", LIVE_MS)]).await;
    let daemon = GitDaemon::start(&w.fleet.remotes()).expect("a git daemon");
    let viewer = w.key("acme", Role::Viewer).await;
    let operator = w.key("acme", Role::Operator).await;

    // A clone that works: its page shows its git steps.
    fixtures::bare_repo(&w.fleet.remotes(), "seed.git", &[("README.md", "seed\n")]);
    let cloned = enqueue(
        &w,
        &operator,
        json!({"op": "clone", "args": {"repo_url": daemon.url("seed.git"),
               "agent_id": "a1", "task_id": "t1"}}),
    )
    .await;
    assert_eq!(ended(&w, &operator, &cloned).await["status"], "done");

    // Five clones of repositories not made yet die; once made, a retry works. Three are
    // retried by filter (op clone), two ticked. Two dead sleeps (another op) stay dead.
    let mut clones = Vec::new();
    for i in 1..=5 {
        let id = enqueue(
            &w,
            &operator,
            json!({"op": "clone", "max_attempts": 1,
                   "args": {"repo_url": daemon.url(&format!("later-{i}.git")),
                            "agent_id": "a1", "task_id": format!("t{i}")}}),
        )
        .await;
        clones.push(id);
    }
    for id in &clones {
        assert_eq!(ended(&w, &operator, id).await["status"], "dead");
    }
    let message = ended(&w, &operator, &clones[1]).await["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("later-2"),
        "a clone's error names its repository: {message}"
    );
    for i in 1..=5 {
        fixtures::bare_repo(
            &w.fleet.remotes(),
            &format!("later-{i}.git"),
            &[("README.md", "later\n")],
        );
    }
    let sleeps = [
        dead_sleep(&w, &operator).await,
        dead_sleep(&w, &operator).await,
    ];
    let delayed: Vec<String> = futures::future::join_all((0..2).map(|i| {
        enqueue(
            &w,
            &operator,
            json!({"op": "echo", "args": {"n": i}, "delay_secs": 3600}),
        )
    }))
    .await;
    // The views list the history's rows, written in the background.
    eventually(
        "the jobs' rows are in the history",
        Duration::from_secs(30),
        async || {
            let dead = w.get(&operator, "/v1/jobs?status=dead&limit=100").await;
            let late = w.get(&operator, "/v1/jobs?status=delayed&limit=100").await;
            let ids = |a: &crate::support::Answer| -> HashSet<String> {
                a.body["jobs"]
                    .as_array()
                    .map(|j| {
                        j.iter()
                            .filter_map(|r| r["job_id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (d, l) = (ids(&dead), ids(&late));
            let all = clones.iter().chain(&sleeps).all(|id| d.contains(id))
                && delayed.iter().all(|id| l.contains(id));
            all.then_some(())
                .ok_or(format!("{}\n{}", dead.text, late.text))
        },
    )
    .await;

    let _text = run_browser_script(
        &w,
        "jobs.mjs",
        vec![
            ("GF_BASE", w.gw.url("/ui")),
            ("GF_API", w.gw.url("")),
            ("GF_VIEWER_KEY", viewer.clone()),
            ("GF_OPERATOR_KEY", operator.clone()),
            ("GF_CLONE_JOB", cloned.clone()),
            ("GF_DEAD_CLONES", clones.join(",")),
            ("GF_DEAD_SLEEPS", sleeps.join(",")),
            ("GF_DELAYED", delayed.join(",")),
            ("GF_SEARCH_TEXT", "later-2".to_string()),
        ],
    )
    .await;

    // What the browser did, as the queue has it: every clone ran to done (three by filter,
    // two ticked); the sleeps (and the one the browser made for the stale confirmation) are
    // still dead; one delayed job is gone, the other ran.
    for id in &clones {
        assert_eq!(
            ended(&w, &operator, id).await["status"],
            "done",
            "clone {id}"
        );
    }
    let mut redis = w.fleet.test_queue().redis().await;
    let keys = w.fleet.queue().keys().clone();
    let dead_now: Vec<String> = redis.zrange(keys.dead("jobs"), 0, -1).await.unwrap();
    for id in &sleeps {
        assert!(
            dead_now.contains(id),
            "sleep {id} is still dead: {dead_now:?}"
        );
    }
    assert_eq!(
        dead_now.len(),
        3,
        "the two sleeps and the stale one's: {dead_now:?}"
    );
    let gone: Option<String> = redis.hget(keys.job(&delayed[0]), "status").await.unwrap();
    assert_eq!(gone, None, "the deleted delayed job is gone from Redis");
    assert_eq!(ended(&w, &operator, &delayed[1]).await["status"], "done");

    // The audit log has the dashboard's bulk retry (exactly the three clones), the
    // viewer's refused one, and the stale confirmation's refusal.
    let entries = eventually("the audit entries", Duration::from_secs(20), async || {
        let a = w
            .get(&operator, "/v1/audit?action=jobs.retry&limit=50")
            .await;
        let e = a.body["entries"].as_array().cloned().unwrap_or_default();
        (e.len() >= 3).then_some(e).ok_or(a.text)
    })
    .await;
    let done: Vec<&Value> = entries.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(done.len(), 1, "{entries:?}");
    assert_eq!(done[0]["surface"], "ui");
    assert_eq!(done[0]["key_role"], "operator");
    let ids: HashSet<&str> = done[0]["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let by_filter: HashSet<&str> = clones[..3].iter().map(String::as_str).collect();
    assert_eq!(ids, by_filter, "exactly the three counted");
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "auth" && e["key_role"] == "viewer"),
        "the viewer's forged bulk retry is logged as refused: {entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "conflict" && e["surface"] == "ui"),
        "the stale confirmation is logged as refused: {entries:?}"
    );
    let log = w.gw.log_text();
    for key in [&viewer, &operator] {
        assert!(
            !log.contains(&key[21..]),
            "a key's secret is in the gateway's log"
        );
    }
}
