//! The weekly template rebuild reaches every live worker through its own queue.

use chrono::Utc;
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::template_rebuild;

use crate::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_worker_refreshes_its_mirrors_and_rebuilds_its_template() {
    let mut w = World::new().await;
    let mut ids = vec![w.fleet.add_worker().await, w.fleet.add_worker().await];
    ids.sort();
    let ctx = w.ctx(SchedulerConfig::default());
    let out = template_rebuild::run_once(&ctx, Utc::now())
        .await
        .unwrap()
        .0;
    assert_eq!(out["workers"], 2, "{out}");
    assert_eq!(out["rebuilt"], 2, "{out}");
    let mut answered: Vec<String> = out["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["result"]["template_id"].is_string(), "{a}");
            assert!(a["result"]["mirrors_refreshed"].is_u64(), "{a}");
            a["worker"].as_str().unwrap().to_string()
        })
        .collect();
    answered.sort();
    assert_eq!(answered, ids);
    w.fleet.shutdown().await;
}
