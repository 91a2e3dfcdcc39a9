//! The health check has each worker check its sandboxes; a broken one is terminated,
//! recorded with its error, and the pool refilled.

use chrono::Utc;
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::health_check;
use serde_json::json;

use crate::world::{ORG, World};

/// The working tree of the live sandbox on `agent_branch` (its `.git/HEAD` names it).
pub fn work_tree(w: &World, agent_branch: &str) -> std::path::PathBuf {
    let wanted = format!("ref: refs/heads/{agent_branch}");
    let root = w.fleet.sandbox_root();
    for worker in std::fs::read_dir(&root).unwrap().flatten() {
        let Ok(dirs) = std::fs::read_dir(worker.path().join("sandboxes")) else {
            continue;
        };
        for dir in dirs.flatten() {
            let work = dir.path().join("work");
            let head = std::fs::read_to_string(work.join(".git/HEAD")).unwrap_or_default();
            if head.trim() == wanted {
                return work;
            }
        }
    }
    panic!("no working tree on {agent_branch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_sandbox_is_terminated_with_its_error_and_the_healthy_ones_stay() {
    let mut w = World::new().await;
    w.fleet.add_worker().await;
    let url = w.repos(&["repo.git"]).remove(0);
    let broken = w.clone_repo(&url, "a1").await;
    let healthy = w.clone_repo(&url, "a2").await;
    let cached = w.clone_repo(&url, "a3").await;
    w.fleet
        .ok_as(ORG, "release", json!({"sandbox_id": cached}))
        .await;
    w.row_where(&cached, |r| r.is_pooled).await;
    w.row_where(&healthy, |r| r.status == "ready").await;
    w.row_where(&broken, |r| r.status == "ready").await;

    // Something outside git wrecks one working copy.
    std::fs::remove_dir_all(work_tree(&w, "agent-a1-t").join(".git")).unwrap();

    let ctx = w.ctx(SchedulerConfig::default());
    let tick = Utc::now();
    let out = health_check::run_once(&ctx, tick).await.unwrap().0;
    assert_eq!(out["broken"], json!([broken]), "{out}");
    let answer = &out["answers"][0]["result"];
    // Two live sandboxes and one released copy, none busy.
    assert_eq!(answer["checked"], 3, "{out}");
    assert_eq!(answer["busy"], 0, "{out}");
    let reported = answer["broken"].as_array().unwrap();
    assert_eq!(reported.len(), 1, "{out}");
    assert_eq!(reported[0]["sandbox_id"], broken.as_str(), "{out}");
    assert_eq!(reported[0]["cached"], false, "{out}");
    let why = reported[0]["error"].as_str().unwrap();
    assert!(why.contains("not a git repository"), "{out}");
    // The clones emptied the pool; the check tops it up to exactly its minimum (nothing
    // else adds to it).
    let pool_min = w.fleet.setup().git.unwrap().pool_min;
    assert_eq!(answer["pooled"], pool_min, "pool refilled: {out}");
    assert!(answer["pool_error"].is_null(), "{out}");

    let r = w.row(&broken).await.unwrap();
    assert_eq!(r.status, "terminated");
    assert_eq!(r.last_operation.as_deref(), Some("health_check"));
    // Its clone was its only op, and it succeeded: the check is its one error.
    assert_eq!(r.error_count, 1, "{r:?}");
    assert_eq!(
        r.last_error.as_deref(),
        Some(format!("health check: {why}").as_str())
    );
    let usage: i64 = sqlx::query_scalar("SELECT count(*) FROM sandbox_usage WHERE sandbox_id = $1")
        .bind(&broken)
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    assert_eq!(usage, 1, "its org's sandbox time ends");

    assert_eq!(w.row(&healthy).await.unwrap().status, "ready");
    assert!(w.row(&cached).await.unwrap().is_pooled);
    // The worker let the broken one go; the healthy one still works.
    assert_eq!(
        w.fails("status", json!({"sandbox_id": broken})).await,
        "sandbox_not_found"
    );
    w.fleet
        .ok_as(ORG, "status", json!({"sandbox_id": healthy}))
        .await;
    w.fleet.shutdown().await;
}
