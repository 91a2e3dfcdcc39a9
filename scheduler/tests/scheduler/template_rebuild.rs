//! The weekly template rebuild reaches every live worker through its own queue: each one's
//! template switches to a new version, which the sandboxes it makes next start from, and a
//! sandbox in use keeps the version it was made from.

use std::collections::HashMap;
use std::path::Path;

use chrono::Utc;
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::template_rebuild;
use serde_json::json;

use crate::health_check::work_tree;
use crate::world::{ORG, World};

/// The template version `worker` makes sandboxes from now (its `template/current` link).
fn current_template(root: &Path, worker: &str) -> String {
    let link = root.join(worker).join("template/current");
    let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    target.to_str().unwrap().to_string()
}

/// The worker holding sandbox `id` (`<worker id>.<ulid>`).
fn worker_of(id: &str) -> &str {
    id.rsplit_once('.').unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_worker_refreshes_its_mirrors_and_switches_to_a_new_template() {
    let mut w = World::new().await;
    let mut ids = vec![w.fleet.add_worker().await, w.fleet.add_worker().await];
    ids.sort();
    let root = w.fleet.sandbox_root();
    let url = w.repos(&["repo.git"]).remove(0);
    // A sandbox in use on one worker (which so has the repository's mirror), made from
    // that worker's template of now.
    let live = w.clone_repo(&url, "a1").await;
    let holder = worker_of(&live).to_string();
    let before: HashMap<String, String> = ids
        .iter()
        .map(|id| (id.clone(), current_template(&root, id)))
        .collect();
    let live_config = work_tree(&w, "agent-a1-t").join(".git/config");
    assert!(
        std::fs::read_to_string(&live_config)
            .unwrap()
            .contains(&before[&holder]),
        "the live sandbox is made from {}",
        before[&holder]
    );

    let ctx = w.ctx(SchedulerConfig::default());
    let out = template_rebuild::run_once(&ctx, Utc::now())
        .await
        .unwrap()
        .0;
    assert_eq!(out["workers"], 2, "{out}");
    assert_eq!(out["rebuilt"], 2, "{out}");
    let mut answered = Vec::new();
    for a in out["answers"].as_array().unwrap() {
        let worker = a["worker"].as_str().unwrap().to_string();
        let r = &a["result"];
        let new = r["template_id"].as_str().unwrap_or_else(|| panic!("{a}"));
        let old = &before[&worker];
        assert_ne!(new, old, "{worker}'s template switched: {a}");
        assert_eq!(current_template(&root, &worker), new, "{a}");
        let holds = worker == holder;
        // Only the holder has a mirror; nobody has a released copy; the holder's old
        // version is kept for its sandbox in use, the other's goes at once.
        assert_eq!(r["mirrors_refreshed"], u64::from(holds), "{a}");
        assert_eq!(r["mirrors_failed"], json!([]), "{a}");
        assert_eq!(r["copies_removed"], 0, "{a}");
        assert_eq!(r["versions_removed"], u64::from(!holds), "{a}");
        assert_eq!(
            root.join(&worker).join("template").join(old).exists(),
            holds,
            "{worker}'s old version on disk: {a}"
        );
        answered.push(worker);
    }
    answered.sort();
    assert_eq!(answered, ids);

    // The sandbox in use is not disturbed: it works, on the version it was made from.
    w.fleet
        .ok_as(ORG, "status", json!({"sandbox_id": live}))
        .await;
    assert!(
        std::fs::read_to_string(&live_config)
            .unwrap()
            .contains(&before[&holder])
    );
    // A new sandbox, on whichever worker makes it, starts from that worker's new version.
    let next = w.clone_repo(&url, "a2").await;
    let maker = worker_of(&next).to_string();
    let config = std::fs::read_to_string(work_tree(&w, "agent-a2-t").join(".git/config")).unwrap();
    let made_from = current_template(&root, &maker);
    assert_ne!(made_from, before[&maker]);
    assert!(config.contains(&made_from), "{config}");
    w.fleet.shutdown().await;
}
