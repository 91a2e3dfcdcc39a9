//! Listing the workers: each registered worker as it describes itself at every beat, its
//! heartbeat, and the jobs it holds.

use std::time::Duration;

use gitfleet_contract::JobStatus;
use gitfleet_testkit::eventually;
use serde_json::json;

use crate::fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_listing_shows_what_each_worker_says_of_itself_and_the_jobs_it_holds() {
    let mut t = fleet().start().await;
    assert!(t.client().workers().await.unwrap().is_empty());
    let mut setup = t.setup();
    setup.config.concurrency = 3;
    setup.config.own_queue_concurrency = 2;
    setup.config.queues = vec!["jobs".into(), "bulk".into()];
    let busy = t.add_worker_with(setup).await;
    let idle = t.add_worker().await;

    let job = t
        .submit("sleep", json!({"ms": 1500}), &Default::default())
        .await;
    let listed = eventually(
        "the sleep job to be held",
        Duration::from_secs(20),
        async || {
            // The record first, then the listing: a job seen running is held until it ends
            // (1.5 s), so the listing read after it must show it.
            let running = t
                .queue()
                .job(&job.job_id)
                .await
                .map_err(|e| e.to_string())?;
            match running {
                Some(r) if r.status == JobStatus::Running => {
                    let workers = t.client().workers().await.map_err(|e| e.to_string())?;
                    Ok((workers, r.worker))
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let (workers, holder) = listed;
    let mut ids: Vec<&str> = workers.iter().map(|w| w.worker_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = vec![busy.as_str(), idle.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    for w in &workers {
        assert_eq!(w.host.as_deref(), Some("queue"), "{w:?}");
        assert_eq!(w.pid, Some(std::process::id()), "in this process: {w:?}");
        assert_eq!(w.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert!(!w.declared_dead, "{w:?}");
        let (started, beat) = (w.started_at.unwrap(), w.last_beat_at.unwrap());
        assert!(started <= beat, "{w:?}");
        assert!(w.heartbeat_age_ms.is_some(), "{w:?}");
        let holds_the_job = holder.as_deref() == Some(w.worker_id.as_str());
        assert_eq!(
            w.held.contains(&job.job_id),
            holds_the_job,
            "the job is in its holder's list only: {w:?}"
        );
    }
    let b = workers.iter().find(|w| w.worker_id == busy).unwrap();
    assert_eq!(b.queues, ["jobs", "bulk"]);
    assert_eq!((b.concurrency, b.own_queue_concurrency), (Some(3), Some(2)));
    let i = workers.iter().find(|w| w.worker_id == idle).unwrap();
    assert_eq!(i.queues, ["jobs"]);
    let defaults = crate::worker_config();
    assert_eq!(
        (i.concurrency, i.own_queue_concurrency),
        (
            Some(defaults.concurrency as u32),
            Some(defaults.own_queue_concurrency as u32)
        )
    );

    let json = serde_json::to_value(b).unwrap();
    assert!(
        json["started_at"].as_str().unwrap().ends_with('Z'),
        "times in RFC 3339: {json}"
    );

    t.stop_worker(&idle).await;
    let left: Vec<String> = t
        .client()
        .workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    assert_eq!(left, [busy], "a worker that left is not listed");
    t.shutdown().await;
}
