//! Priority recomputes the ten most used repositories from the registry.

use chrono::{DateTime, Duration, Utc};
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::priority;

use crate::world::World;

pub async fn insert_sandbox(
    w: &World,
    id: &str,
    worker: &str,
    repo: &str,
    status: &str,
    uses: i32,
    used: DateTime<Utc>,
) {
    sqlx::query(
        r#"INSERT INTO git_sandboxes (sandbox_id, worker_id, org_id, repo_url, branch, agent_branch,
               status, created_at, last_used_at, use_count, updated_at)
           VALUES ($1, $2, 'acme', $3, 'main', 'agent-x-y', $4, $5, $5, $6, $5)"#,
    )
    .bind(id)
    .bind(worker)
    .bind(repo)
    .bind(status)
    .bind(used)
    .bind(uses)
    .execute(w.store.pool())
    .await
    .unwrap();
}

async fn top(w: &World) -> Vec<(i32, String)> {
    sqlx::query_as("SELECT rank, repo_url FROM repo_priority ORDER BY rank")
        .fetch_all(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn priority_ranks_the_ten_most_used_repositories_in_its_window() {
    let w = World::new().await;
    let now = Utc::now();
    // r0 is used most, r11 least; "old" was used most of all, but before the window.
    for i in 0..12 {
        let repo = format!("https://example.com/r{i}.git");
        insert_sandbox(
            &w,
            &format!("w-1.s{i}a"),
            "w-1",
            &repo,
            "ready",
            20 - i,
            now,
        )
        .await;
        insert_sandbox(
            &w,
            &format!("w-1.s{i}b"),
            "w-1",
            &repo,
            "terminated",
            1,
            now,
        )
        .await;
    }
    insert_sandbox(
        &w,
        "w-1.old",
        "w-1",
        "https://example.com/old.git",
        "terminated",
        1000,
        now - Duration::days(30),
    )
    .await;
    let ctx = w.ctx(SchedulerConfig::default());
    let out = priority::run_once(&ctx, now).await.unwrap().0;
    let ranked = top(&w).await;
    assert_eq!(ranked.len(), 10, "{out}");
    for (i, (rank, repo)) in ranked.iter().enumerate() {
        assert_eq!(*rank, i as i32 + 1);
        assert_eq!(repo, &format!("https://example.com/r{i}.git"));
    }
    assert_eq!(out["top"][0]["uses"], 21);

    // Use changes; the next round replaces the list.
    sqlx::query("UPDATE git_sandboxes SET use_count = 500 WHERE sandbox_id = 'w-1.s11a'")
        .execute(w.store.pool())
        .await
        .unwrap();
    priority::run_once(&ctx, now).await.unwrap();
    let ranked = top(&w).await;
    assert_eq!(ranked.len(), 10);
    assert_eq!(ranked[0].1, "https://example.com/r11.git");
    assert!(
        !ranked.iter().any(|(_, r)| r.ends_with("/r9.git")),
        "{ranked:?}"
    );
}
