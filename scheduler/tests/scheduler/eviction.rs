//! Eviction applies each TTL tier to released copies, with the time under the test's
//! control, and the owning worker really removes the evicted copies.

use chrono::{Duration, SubsecRound, Utc};
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::{eviction, priority};
use serde_json::json;

use crate::world::{ORG, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_keeps_top_hot_and_fresh_warm_copies_and_has_the_worker_evict_the_rest() {
    let mut w = World::new().await;
    w.fleet.add_worker().await;
    let urls = w.repos(&["top.git", "hot.git", "warm.git", "cold.git"]);
    let (top, hot, warm, cold) = (&urls[0], &urls[1], &urls[2], &urls[3]);
    let mut ids = Vec::new();
    for (url, agent) in [
        (top, "a1"),
        (hot, "a2"),
        (warm, "a3"),
        (warm, "a4"),
        (cold, "a5"),
    ] {
        ids.push(w.clone_repo(url, agent).await);
    }
    for id in &ids {
        let r = w
            .fleet
            .ok_as(ORG, "release", json!({"sandbox_id": id}))
            .await;
        assert_eq!(r["cached"], true);
        w.row_where(id, |r| r.status == "terminated" && r.is_pooled)
            .await;
    }
    let [s_top, s_hot, s_warm_old, s_warm_new, s_cold] = ids.as_slice() else {
        unreachable!()
    };

    // "Now" is three hours ahead; each repository was last used as its tier says.
    let t = (Utc::now() + Duration::hours(3)).trunc_subsecs(6);
    let min = Duration::minutes(1);
    w.set_times(s_top, t - min * 180, Some(t - min * 180)).await;
    w.set_times(s_hot, t - min * 5, Some(t - min * 60)).await;
    w.set_times(s_warm_old, t - min * 20, Some(t - min * 40))
        .await;
    w.set_times(s_warm_new, t - min * 20, Some(t - min * 25))
        .await;
    w.set_times(s_cold, t - min * 120, Some(t - min * 120))
        .await;
    sqlx::query("UPDATE git_sandboxes SET use_count = 50 WHERE sandbox_id = $1")
        .bind(s_top)
        .execute(w.store.pool())
        .await
        .unwrap();

    let mut config = SchedulerConfig::default();
    config.priority.top_n = 1;
    let ctx = w.ctx(config);
    let p = priority::run_once(&ctx, t).await.unwrap();
    assert_eq!(p.0["top"][0]["repo_url"], top.as_str(), "{}", p.0);

    let out = eviction::run_once(&ctx, t).await.unwrap().0;
    assert_eq!(out["expired"], 2, "{out}");
    assert_eq!(out["evicted"], 2, "{out}");
    let mut evicted: Vec<String> = out["workers"][0]["result"]["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    evicted.sort();
    let mut want = vec![s_warm_old.clone(), s_cold.clone()];
    want.sort();
    assert_eq!(evicted, want, "{out}");

    let row = |id: &String| {
        let id = id.clone();
        let w = &w;
        async move { w.row(&id).await.unwrap() }
    };
    let r = row(s_top).await;
    assert!(r.is_pooled && r.ttl_tier.as_deref() == Some("top") && r.expires_at.is_none());
    let r = row(s_hot).await;
    assert!(r.is_pooled && r.ttl_tier.as_deref() == Some("hot"));
    assert_eq!(r.expires_at, Some(t - min * 60 + Duration::hours(2)));
    let r = row(s_warm_new).await;
    assert!(r.is_pooled && r.ttl_tier.as_deref() == Some("warm"));
    assert_eq!(r.expires_at, Some(t - min * 25 + min * 30));
    for id in [s_warm_old, s_cold] {
        let r = row(id).await;
        assert!(!r.is_pooled, "{r:?}");
        assert_eq!(r.last_operation.as_deref(), Some("evict"));
    }
    let r = row(s_cold).await;
    assert_eq!(r.ttl_tier.as_deref(), Some("cold"));

    // The worker really let its copies go: the cold repository clones afresh, the others
    // recycle the copies they kept.
    let hit = |url: &String, agent: &'static str| {
        let url = url.clone();
        let w = &w;
        async move {
            w.fleet
                .ok(
                    "clone",
                    json!({"repo_url": url, "agent_id": agent, "task_id": "t2"}),
                )
                .await["cache_hit"]
                .as_bool()
                .unwrap()
        }
    };
    assert!(!hit(cold, "b1").await, "the cold copy was evicted");
    assert!(hit(hot, "b2").await, "the hot copy was kept");
    assert!(hit(top, "b3").await, "the top copy was kept");
    assert!(hit(warm, "b4").await, "the fresh warm copy was kept");

    // Six minutes later the fresh warm copy's half hour is over, and the hot repository,
    // now unused for 11 minutes, is warm: its copy, released 66 minutes ago, goes too. Both
    // copies were just recycled by the clones above: the worker reports them missing, and
    // the registry lets them go all the same. The top copy stays.
    let later = t + min * 6;
    let out = eviction::run_once(&ctx, later).await.unwrap().0;
    assert_eq!(out["evicted"], 2, "{out}");
    let mut missing: Vec<String> = out["workers"][0]["result"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    missing.sort();
    let mut want = vec![s_hot.clone(), s_warm_new.clone()];
    want.sort();
    assert_eq!(missing, want, "{out}");
    assert!(!row(s_warm_new).await.is_pooled);
    let r = row(s_hot).await;
    assert!(
        !r.is_pooled && r.ttl_tier.as_deref() == Some("warm"),
        "{r:?}"
    );
    assert!(row(s_top).await.is_pooled);
    w.fleet.shutdown().await;
}
