//! The dashboard's fleet views (workers, sandboxes, repositories, schedule,
//! organizations) in a real browser (`gateway/ui-tests/fleet.mjs`, Debian's chromium
//! driven by playwright-core) against the gateway binary, a worker, a scheduler replica and
//! a git server on loopback: an admin drains the worker from its page and it stops taking
//! jobs, then undrains it; an operator releases a sandbox; a viewer has no action and its
//! forged actions are refused; an admin runs a scheduler task now; an organization's key is
//! not allowed on the Organizations page. The Workers and Sandboxes pages are live: a drain
//! and a release made through the API show on the open page without a reload, a viewer's
//! updates never carry another organization's job or sandbox, and several open pages cost
//! one query set per interval; its rows come and go with the workers
//! (`gateway/ui-tests/workers_live.mjs`).

use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::{GitDaemon, eventually, fixtures};
use serde_json::{Value, json};

use crate::dashboard::{LIVE_MS, chromium, node_modules, run_browser_script, ui_tests_dir};
use crate::support::{World, world_with};

/// A job enqueued through the API; its id.
async fn enqueue(w: &World, key: &str, job: Value) -> String {
    let a = w.post(key, "/v1/jobs", &job).await;
    assert_eq!(a.status, 201, "{job}: {}", a.text);
    a.body["job_id"].as_str().expect("job_id").to_string()
}

/// A clone as `key`'s organization; the sandbox's id.
async fn sandbox(w: &World, key: &str, url: &str, agent: &str) -> String {
    let result = w
        .run_ok(
            key,
            json!({"op": "clone", "args": {"repo_url": url, "agent_id": agent, "task_id": "t1"}}),
        )
        .await;
    result["sandbox_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a sandbox id in {result}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_views_in_a_browser_drain_release_and_run_by_role() {
    chromium();
    tokio::task::spawn_blocking(node_modules)
        .await
        .expect("npm ci");
    let w = world_with(&[("GITFLEET_GATEWAY_UI_LIVE_MS", LIVE_MS)]).await;
    let daemon = GitDaemon::start(&w.fleet.remotes()).expect("a git daemon");
    fixtures::bare_repo(&w.fleet.remotes(), "app.git", &[("README.md", "app\n")]);
    let viewer = w.key("acme", Role::Viewer).await;
    let operator = w.key("acme", Role::Operator).await;
    let admin = w.key("fleet", Role::Admin).await;
    let globex = w.key("globex", Role::Producer).await;
    let worker = w.fleet.worker_ids()[0].to_string();
    w.fleet
        .store()
        .set_budget("acme", Some(25.0))
        .await
        .expect("a budget");

    // A sandbox of each organization; then a job of each that runs a while, so the worker
    // has busy slots to show (and is draining, not drained, when the admin drains it).
    let repo = daemon.url("app.git");
    let ours = sandbox(&w, &operator, &repo, "a1").await;
    let theirs = sandbox(&w, &globex, &repo, "g1").await;
    // Another of acme's, released through the API while its Sandboxes page is open.
    let spare = sandbox(&w, &operator, &repo, "a2").await;
    let acme_job = enqueue(&w, &operator, json!({"op": "sleep", "args": {"ms": 30000}})).await;
    let globex_job = enqueue(&w, &globex, json!({"op": "sleep", "args": {"ms": 30000}})).await;
    eventually(
        "both sleeps run, both sandboxes are in the registry, the repository is counted",
        Duration::from_secs(30),
        async || {
            let workers = w.get(&admin, "/v1/workers").await;
            let running: Vec<&str> = workers.body["workers"][0]["running"]
                .as_array()
                .map(|r| r.iter().filter_map(|j| j["job_id"].as_str()).collect())
                .unwrap_or_default();
            let boxes = w.get(&admin, "/v1/sandboxes").await;
            let listed: Vec<&str> = boxes.body["sandboxes"]
                .as_array()
                .map(|r| r.iter().filter_map(|s| s["sandbox_id"].as_str()).collect())
                .unwrap_or_default();
            let repos = w.get(&admin, "/v1/repositories").await;
            let counted = repos.body["repositories"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["repo_url"] == repo.as_str()));
            (running.contains(&acme_job.as_str())
                && running.contains(&globex_job.as_str())
                && listed.contains(&ours.as_str())
                && listed.contains(&theirs.as_str())
                && listed.contains(&spare.as_str())
                && counted)
                .then_some(())
                .ok_or(format!("{}\n{}\n{}", workers.text, boxes.text, repos.text))
        },
    )
    .await;

    // A scheduler replica in this process, on the fleet's Redis and Postgres (as
    // drain.rs starts it): its tasks run only when asked.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut config = gitfleet_scheduler::SchedulerConfig {
        leader_check: Duration::from_millis(200),
        ..Default::default()
    };
    for s in [&mut config.eviction.schedule, &mut config.priority.schedule] {
        *s = gitfleet_scheduler::config::Schedule::parse("0 0 3 * * *").unwrap();
    }
    let ctx = gitfleet_scheduler::Context {
        store: w.fleet.store().clone(),
        queue: w.fleet.queue().clone(),
        replica: "ui-test-replica".into(),
        config,
    };
    let sched = tokio::spawn(gitfleet_scheduler::cron::run(ctx, stop.clone()));
    eventually("a leader", Duration::from_secs(30), async || {
        let s = w.get(&admin, "/v1/schedule").await;
        (!s.body["leader"].is_null()).then_some(()).ok_or(s.text)
    })
    .await;

    let _text = run_browser_script(
        &w,
        "fleet.mjs",
        vec![
            ("GF_BASE", w.gw.url("/ui")),
            ("GF_API", w.gw.url("")),
            ("GF_VIEWER_KEY", viewer.clone()),
            ("GF_OPERATOR_KEY", operator.clone()),
            ("GF_ADMIN_KEY", admin.clone()),
            ("GF_WORKER", worker.clone()),
            ("GF_SANDBOX", ours.clone()),
            ("GF_OTHER_SANDBOX", theirs.clone()),
            ("GF_SPARE_SANDBOX", spare.clone()),
            ("GF_LIVE_MS", LIVE_MS.to_string()),
            ("GF_ACME_JOB", acme_job.clone()),
            ("GF_OTHER_JOB", globex_job.clone()),
            ("GF_REPO", repo.clone()),
        ],
    )
    .await;
    stop.cancel();
    sched.await.unwrap();

    // What the browser did, as the API has it. The worker is undrained and took the job
    // that waited while it was drained.
    let workers = w.get(&admin, "/v1/workers").await;
    let me = &workers.body["workers"][0];
    assert_eq!(me["state"], "running", "{}", workers.text);
    assert!(me["drain_requested_at"].is_null(), "{}", workers.text);
    // Our sandbox was released (its release job by the dashboard, in the audit log with
    // surface `ui`); the other organization's survived the operator's forged release
    // (until the drain removed every sandbox of the worker).
    w.delete(&operator, &format!("/v1/sandboxes/{ours}"))
        .await
        .problem(404, "not_found");
    let audit = eventually(
        "the dashboard's release in the audit log",
        Duration::from_secs(30),
        async || {
            let a = w.get(&admin, "/v1/audit?action=sandbox.release").await;
            a.body["entries"]
                .as_array()
                .and_then(|e| {
                    e.iter()
                        .find(|e| e["outcome"] == "ok" && e["target"] == ours.as_str())
                        .cloned()
                })
                .ok_or(a.text)
        },
    )
    .await;
    assert_eq!(audit["surface"], "ui", "{audit}");
    assert_eq!(audit["target"], ours.as_str(), "{audit}");
    assert_eq!(audit["org_id"], "acme", "{audit}");
    let refused = w.get(&admin, "/v1/audit?action=sandbox.release").await;
    let entries = refused.body["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["target"] != theirs.as_str() || e["outcome"] != "ok"),
        "no release of the other organization's sandbox: {}",
        refused.text
    );
    // Drain, undrain and run now from the dashboard are in the audit log (surface `ui`,
    // fleet-wide), and so are the viewer's refused ones.
    for action in ["worker.drain", "worker.undrain", "schedule.run"] {
        let entries = eventually(
            format!("{action} in the audit log"),
            Duration::from_secs(30),
            async || {
                let a = w.get(&admin, &format!("/v1/audit?action={action}")).await;
                let entries = a.body["entries"].as_array().cloned().unwrap_or_default();
                entries
                    .iter()
                    .any(|e| e["outcome"] == "ok" && e["surface"] == "ui")
                    .then_some(entries)
                    .ok_or(a.text)
            },
        )
        .await;
        // The page's (the live test also drains through the API, surface `api`).
        let done = entries
            .iter()
            .find(|e| e["outcome"] == "ok" && e["surface"] == "ui")
            .unwrap_or_else(|| panic!("{action} from the dashboard: {entries:?}"));
        assert_eq!(done["key_role"], "admin", "{done}");
        assert!(done["org_id"].is_null(), "{done}");
        if action != "worker.undrain" {
            assert!(
                entries
                    .iter()
                    .any(|e| e["key_role"] == "viewer" && e["outcome"] == "auth"),
                "the viewer's forged {action} is recorded as refused: {entries:?}"
            );
        }
    }
    // The manual run is recorded.
    let s = w.get(&admin, "/v1/schedule").await;
    assert!(
        s.body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["task"] == "priority" && r["trigger"] == "manual" && r["outcome"] == "ok"),
        "{}",
        s.text
    );
    // No key in the gateway's log.
    let log = w.gw.log_text();
    for key in [&viewer, &operator, &admin] {
        assert!(
            !log.contains(&key[21..]),
            "a key's secret is in the gateway's log"
        );
    }
}

/// The next line the browser test prints (each also printed here); panics saying `what`
/// when it ends or takes over a minute.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: &mut String,
    what: &str,
) -> String {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap_or_else(|_| {
            panic!("the browser test said nothing for a minute, waiting for {what}:\n{seen}")
        })
        .expect("its output")
        .unwrap_or_else(|| panic!("the browser test ended, waiting for {what}:\n{seen}"));
    println!("{line}");
    seen.push_str(&line);
    seen.push('\n');
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_workers_page_adds_and_removes_the_rows_of_workers_that_come_and_go() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    let browser = chromium();
    tokio::task::spawn_blocking(node_modules)
        .await
        .expect("npm ci");
    let mut w = world_with(&[("GITFLEET_GATEWAY_UI_LIVE_MS", LIVE_MS)]).await;
    let admin = w.key("fleet", Role::Admin).await;
    let first = w.fleet.worker_ids()[0].to_string();
    let mut node = tokio::process::Command::new("node")
        .arg(ui_tests_dir().join("workers_live.mjs"))
        .current_dir(ui_tests_dir())
        .envs([
            ("GF_BASE", w.gw.url("/ui")),
            ("GF_ADMIN_KEY", admin.clone()),
            ("GF_WORKER", first),
            ("GF_CHROMIUM", browser.display().to_string()),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = node.stdin.take().expect("its stdin");
    let mut lines = tokio::io::BufReader::new(node.stdout.take().expect("its stdout")).lines();
    let mut seen = String::new();
    while next_line(&mut lines, &mut seen, "ready").await != "ready" {}

    // A worker registers while the page is open; then it stops.
    let added = w.fleet.add_worker().await;
    stdin
        .write_all(format!("add {added}\n").as_bytes())
        .await
        .expect("tell the browser test");
    while next_line(&mut lines, &mut seen, "its row").await != "seen" {}
    w.fleet.stop_worker(&added).await;
    stdin
        .write_all(format!("gone {added}\n").as_bytes())
        .await
        .expect("tell the browser test");
    drop(stdin);
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("in time")
    {
        println!("{line}");
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = node.wait().await.expect("node ends");
    assert!(
        status.success() && seen.contains(" passed, 0 failed"),
        "the browser test failed ({status}):\n{seen}\n--- the gateway's log ---\n{}",
        w.gw.log_text()
    );
}
