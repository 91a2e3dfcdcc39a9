//! Draining a worker and the schedule through the API: only admin keys may (viewer,
//! producer and operator keys are refused with 403 problems); an unknown worker or task is
//! 404; asking to run a task with no scheduler leading is 503; a draining worker finishes
//! the job it holds and takes no new one, says so in `GET /v1/workers` (`draining`, then
//! `drained`), and takes jobs again when undrained.

use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::eventually;
use serde_json::{Value, json};

use crate::support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_drains_a_worker_and_the_workers_list_shows_it_drain() {
    let w = world().await;
    let admin = w.key("root", Role::Admin).await;
    let id = w.fleet.worker_ids()[0].to_string();
    let path = format!("/v1/workers/{id}/drain");
    for role in [Role::Viewer, Role::Producer, Role::Operator] {
        let key = w.key("acme", role).await;
        let p = w.post(&key, &path, &json!({})).await;
        let detail = p.problem(403, "auth")["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.contains("needs admin"), "{detail}");
        w.get(&key, "/v1/schedule").await.problem(403, "auth");
        w.post(&key, "/v1/schedule/priority/run", &json!({}))
            .await
            .problem(403, "auth");
    }
    w.post(&admin, "/v1/workers/nobody-01/drain", &json!({}))
        .await
        .problem(404, "not_found");
    let p = w.post(&admin, "/v1/workers/-bad/drain", &json!({})).await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "id", "{}", p.text);

    // A job that runs a while: the worker holds it when it is asked to drain.
    let producer = w.key("acme", Role::Producer).await;
    let held = w
        .post(
            &producer,
            "/v1/jobs",
            &json!({"op": "sleep", "args": {"ms": 4000}}),
        )
        .await;
    assert_eq!(held.status, 201, "{}", held.text);
    let held_id = held.body["job_id"].as_str().unwrap().to_string();
    eventually("the sleep runs", Duration::from_secs(30), async || {
        let r = w.get(&producer, &format!("/v1/jobs/{held_id}")).await;
        (r.body["status"] == "running").then_some(()).ok_or(r.text)
    })
    .await;

    let a = w.post(&admin, &path, &json!({})).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.header("location"), Some("/v1/workers"));
    assert!(
        a.body["worker"]["drain_requested_at"].is_string(),
        "{}",
        a.text
    );
    let listed = |want: &'static str| {
        let w = &w;
        let admin = admin.clone();
        async move {
            eventually(
                format!("the worker says {want}"),
                Duration::from_secs(30),
                async || {
                    let l = w.get(&admin, "/v1/workers").await;
                    let me: Value = l.body["workers"][0].clone();
                    (me["state"] == want).then_some(me.clone()).ok_or(l.text)
                },
            )
            .await
        }
    };
    // From the request on, it takes nothing new: a job enqueued at once (before the worker
    // has heard of the drain at a beat: Redis refuses its fetch) waits. Draining, it
    // finishes what it holds.
    let job = w.post(&producer, "/v1/jobs", &json!({"op": "echo"})).await;
    assert_eq!(job.status, 201, "{}", job.text);
    let job_id = job.body["job_id"].as_str().unwrap().to_string();
    let me = listed("draining").await;
    assert_eq!(me["busy"], 1, "{me}");
    let me = listed("drained").await;
    assert_eq!(me["busy"], 0, "{me}");
    let r = w.get(&producer, &format!("/v1/jobs/{held_id}")).await;
    assert_eq!(
        r.body["status"], "done",
        "the job it held is finished: {}",
        r.text
    );
    // Drained, it takes nothing: the job still waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = w.get(&producer, &format!("/v1/jobs/{job_id}")).await;
    assert_eq!(r.body["status"], "waiting", "{}", r.text);

    let a = w
        .post(&admin, &format!("/v1/workers/{id}/undrain"), &json!({}))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert!(
        a.body["worker"]["drain_requested_at"].is_null(),
        "{}",
        a.text
    );
    listed("running").await;
    let r = w
        .get(&producer, &format!("/v1/jobs/{job_id}?wait=30"))
        .await;
    assert_eq!(r.body["status"], "done", "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_needs_a_leader_to_run_a_task_and_names_unknown_tasks() {
    let w = world().await;
    let admin = w.key("root", Role::Admin).await;
    let s = w.get(&admin, "/v1/schedule").await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert!(s.body["leader"].is_null(), "{}", s.text);
    assert_eq!(s.body["tasks"].as_array().unwrap().len(), 6, "{}", s.text);
    w.post(&admin, "/v1/schedule/nap/run", &json!({}))
        .await
        .problem(404, "not_found");
    let p = w
        .post(&admin, "/v1/schedule/priority/run", &json!({}))
        .await;
    let detail = p.problem(503, "unavailable")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("no scheduler replica leads"), "{detail}");
    w.get(&admin, "/v1/schedule?limit=0")
        .await
        .problem(400, "invalid_input");

    // A replica leads (in this process, on the fleet's Redis and Postgres): the task runs,
    // once, at the tick the answer gives, shown as a manual run.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut config = gitfleet_scheduler::SchedulerConfig {
        leader_check: Duration::from_millis(200),
        ..Default::default()
    };
    config.eviction.schedule = gitfleet_scheduler::config::Schedule::parse("off").unwrap();
    config.priority.schedule = gitfleet_scheduler::config::Schedule::parse("0 0 3 * * *").unwrap();
    let ctx = gitfleet_scheduler::Context {
        store: w.fleet.store().clone(),
        queue: w.fleet.queue().clone(),
        replica: "gw-test-replica".into(),
        config,
    };
    let sched = tokio::spawn(gitfleet_scheduler::cron::run(ctx, stop.clone()));
    let s = eventually("a leader", Duration::from_secs(30), async || {
        let s = w.get(&admin, "/v1/schedule").await;
        (!s.body["leader"].is_null())
            .then_some(s.body.clone())
            .ok_or(s.text)
    })
    .await;
    assert_eq!(s["leader"]["replica"], "gw-test-replica", "{s}");
    let priority = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "priority")
        .unwrap()
        .clone();
    assert_eq!(priority["schedule"], "0 0 3 * * *", "{s}");
    assert!(
        priority["next_tick"]
            .as_str()
            .unwrap()
            .contains("T03:00:00"),
        "{s}"
    );
    let eviction = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "eviction")
        .unwrap()
        .clone();
    assert_eq!(
        (
            eviction["schedule"].as_str(),
            eviction["next_tick"].is_null()
        ),
        (Some("off"), true),
        "{s}"
    );

    let a = w
        .post(&admin, "/v1/schedule/priority/run", &json!({}))
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.header("location"), Some("/v1/schedule"));
    let tick = a.body["tick"].as_str().unwrap().to_string();
    let run = eventually("the run shows", Duration::from_secs(30), async || {
        let s = w.get(&admin, "/v1/schedule").await;
        s.body["runs"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|r| r["task"] == "priority" && r["outcome"] == "ok")
                    .cloned()
            })
            .ok_or(s.text)
    })
    .await;
    assert_eq!(run["tick"], tick.as_str(), "{run}");
    assert_eq!(run["trigger"], "manual", "{run}");
    assert_eq!(run["replica"], "gw-test-replica", "{run}");
    stop.cancel();
    sched.await.unwrap();
}
