//! Real `gitfleet-scheduler` processes: with two replicas each tick fires once, on the
//! leader; when the leader is killed (SIGKILL), the survivor takes over within seconds.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gitfleet_scheduler::Task;

use crate::world::World;

/// A scheduler process, killed when dropped.
struct Replica {
    child: Child,
}

impl Replica {
    fn start(w: &World, name: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet-scheduler"));
        cmd.env("GITFLEET_DATABASE_URL", w.fleet.database_url())
            .env(
                "GITFLEET_REDIS_URL",
                &w.fleet.test_queue().config().redis_url,
            )
            .env("GITFLEET_KEY_PREFIX", w.fleet.prefix())
            .env("GITFLEET_SCHEDULER_REPLICA", name)
            .env("GITFLEET_SCHEDULER_LEADER_CHECK_MS", "200")
            .env("GITFLEET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for task in Task::ALL {
            let var = format!("GITFLEET_SCHEDULE_{}", task.name().to_uppercase());
            cmd.env(var, "* * * * * *");
        }
        let mut child = cmd.spawn().expect("gitfleet-scheduler starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains(name), "replica line: {line:?}");
        Self { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (task, tick, replica) of every run so far.
async fn runs(w: &World) -> Vec<(String, DateTime<Utc>, String)> {
    sqlx::query_as("SELECT task, tick, replica FROM scheduler_runs ORDER BY tick, task")
        .fetch_all(w.store.pool())
        .await
        .unwrap()
}

async fn wait_for_run_by(w: &World, replica: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if runs(w).await.iter().any(|r| r.2 == replica) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no run by {replica} within {within:?}: {:?}",
            runs(w).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every task ran on every second from `from` to `to` (inclusive), once.
fn assert_every_tick_once(
    rows: &[(String, DateTime<Utc>, String)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    for task in Task::ALL {
        let mut ticks: Vec<i64> = rows
            .iter()
            .filter(|r| r.0 == task.name() && r.1 >= from && r.1 <= to)
            .map(|r| r.1.timestamp())
            .collect();
        let n = ticks.len();
        ticks.dedup();
        assert_eq!(ticks.len(), n, "{} ran a tick twice", task.name());
        let want: Vec<i64> = (from.timestamp()..=to.timestamp()).collect();
        assert_eq!(ticks, want, "{} fired every tick", task.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_each_tick_once_and_the_survivor_takes_over_a_killed_leader() {
    let w = World::new().await;
    let mut first = Replica::start(&w, "replica-a");
    wait_for_run_by(&w, "replica-a", Duration::from_secs(30)).await;
    let _second = Replica::start(&w, "replica-b");

    // Both run for a while: only the leader fires, every tick, once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows = runs(&w).await;
    assert!(
        rows.iter().all(|r| r.2 == "replica-a"),
        "only the leader runs: {rows:?}"
    );
    let first_tick = rows.iter().map(|r| r.1).min().unwrap();
    let last_tick = rows.iter().map(|r| r.1).max().unwrap();
    // The newest second may still be running its other tasks.
    let settled = last_tick - chrono::Duration::seconds(1);
    assert!(
        settled - first_tick >= chrono::Duration::seconds(2),
        "{rows:?}"
    );
    assert_every_tick_once(&rows, first_tick + chrono::Duration::seconds(1), settled);
    let failed: Vec<(String, String)> = sqlx::query_as(
        "SELECT task, coalesce(detail, '') FROM scheduler_runs WHERE outcome = 'error'",
    )
    .fetch_all(w.store.pool())
    .await
    .unwrap();
    assert!(failed.is_empty(), "{failed:?}");

    // The leader dies without a word; its lock goes with its connection.
    first.kill();
    let killed = Instant::now();
    let took_over = wait_for_run_by(&w, "replica-b", Duration::from_secs(15)).await;
    let gap = took_over - killed;
    assert!(gap < Duration::from_secs(5), "took over after {gap:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = runs(&w).await;
    let b_first = rows
        .iter()
        .filter(|r| r.2 == "replica-b")
        .map(|r| r.1)
        .min()
        .unwrap();
    let b_last = rows
        .iter()
        .filter(|r| r.2 == "replica-b")
        .map(|r| r.1)
        .max()
        .unwrap();
    assert!(
        rows.iter().all(|r| r.2 == "replica-b" || r.1 < b_first),
        "after the takeover only the survivor runs: {rows:?}"
    );
    assert_every_tick_once(
        &rows,
        b_first + chrono::Duration::seconds(1),
        b_last - chrono::Duration::seconds(1),
    );
}
