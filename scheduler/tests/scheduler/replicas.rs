//! Real `gitfleet-scheduler` processes: with two replicas each tick fires once, on the
//! leader; when the leader is killed (SIGKILL), the survivor takes over within seconds.
//! "Once" is counted by what a run does, not by its row in `scheduler_runs` (that table's
//! `UNIQUE (task, tick)` would hide a second run): each priority round rewrites
//! `repo_priority`, stamped with its tick, and a trigger of the test's own logs every row
//! it inserts, so a tick run twice shows as two rounds.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gitfleet_scheduler::Task;
use gitfleet_testkit::eventually;

use crate::priority::insert_sandbox;
use crate::world::World;

/// A scheduler process, killed when dropped.
struct Replica {
    child: Child,
}

impl Replica {
    fn start(w: &World, name: &str) -> Self {
        Self::start_with(w, name, "* * * * * *")
    }

    /// A replica with every task on `schedule` (`off`: no task ticks).
    fn start_with(w: &World, name: &str, schedule: &str) -> Self {
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
            cmd.env(var, schedule);
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

/// Logs every row a priority round inserts into `repo_priority`, with the round's tick, in
/// a table of the test's database (gone with it). With one repository used in the window,
/// each round inserts exactly one row.
async fn count_priority_rounds(w: &World) {
    for sql in [
        "CREATE TABLE test_priority_rounds (tick TIMESTAMPTZ NOT NULL)",
        r#"CREATE FUNCTION test_log_priority_round() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO test_priority_rounds VALUES (NEW.computed_at); RETURN NULL; END $$"#,
        r#"CREATE TRIGGER test_log_priority_round AFTER INSERT ON repo_priority
           FOR EACH ROW EXECUTE FUNCTION test_log_priority_round()"#,
    ] {
        sqlx::query(sql).execute(w.store.pool()).await.unwrap();
    }
    let used = Utc::now() - chrono::Duration::minutes(1);
    insert_sandbox(
        w,
        "w-1.s1",
        "w-1",
        "https://example.com/r.git",
        "ready",
        1,
        used,
    )
    .await;
}

/// The tick of every priority round that ran (and committed), in order, repeats kept.
async fn priority_rounds(w: &World) -> Vec<i64> {
    let ticks: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT tick FROM test_priority_rounds ORDER BY tick")
            .fetch_all(w.store.pool())
            .await
            .unwrap();
    ticks.iter().map(DateTime::timestamp).collect()
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

/// Waits until `replica` has run the priority task of tick `tick` or a later one.
async fn wait_for_tick_by(w: &World, replica: &str, tick: DateTime<Utc>) {
    eventually(
        format_args!("{replica} to run the tick of {tick}"),
        Duration::from_secs(30),
        async || {
            let rows = runs(w).await;
            rows.iter()
                .any(|r| r.0 == Task::Priority.name() && r.2 == replica && r.1 >= tick)
                .then_some(())
                .ok_or(format!("{rows:?}"))
        },
    )
    .await
}

/// The priority rounds that ran, once every run with a tick from `from` to `to` has
/// finished (a run's row says `running` until its round is committed).
async fn settled_rounds(w: &World, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i64> {
    eventually(
        "the runs in the window to finish",
        Duration::from_secs(30),
        async || {
            let running: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
                "SELECT task, tick FROM scheduler_runs
                  WHERE outcome = 'running' AND tick BETWEEN $1 AND $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(w.store.pool())
            .await
            .unwrap();
            running
                .is_empty()
                .then_some(())
                .ok_or(format!("{running:?}"))
        },
    )
    .await;
    priority_rounds(w).await
}

/// Every task fired on every second from `from` to `to` (inclusive), and each of those
/// ticks' priority rounds ran exactly once.
fn assert_every_tick_once(
    rows: &[(String, DateTime<Utc>, String)],
    rounds: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let want: Vec<i64> = (from.timestamp()..=to.timestamp()).collect();
    for task in Task::ALL {
        // One claim per (task, tick) at most, by the table's constraint: this shows every
        // tick fired; the rounds below show none ran twice.
        let ticks: Vec<i64> = rows
            .iter()
            .filter(|r| r.0 == task.name() && r.1 >= from && r.1 <= to)
            .map(|r| r.1.timestamp())
            .collect();
        assert_eq!(ticks, want, "{} fired every tick", task.name());
    }
    let ran: Vec<i64> = rounds
        .iter()
        .copied()
        .filter(|t| (from.timestamp()..=to.timestamp()).contains(t))
        .collect();
    assert_eq!(ran, want, "each tick's priority round ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_each_tick_once_and_the_survivor_takes_over_a_killed_leader() {
    let w = World::new().await;
    count_priority_rounds(&w).await;
    let mut first = Replica::start(&w, "replica-a");
    wait_for_run_by(&w, "replica-a", Duration::from_secs(30)).await;
    let _second = Replica::start(&w, "replica-b");
    let both = Utc::now();

    // Both run for a while (four ticks): only the leader fires, every tick, once.
    wait_for_tick_by(&w, "replica-a", both + chrono::Duration::seconds(4)).await;
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
    let from = first_tick + chrono::Duration::seconds(1);
    let rounds = settled_rounds(&w, from, settled).await;
    assert_every_tick_once(&rows, &rounds, from, settled);
    let failed: Vec<(String, String)> = sqlx::query_as(
        "SELECT task, coalesce(detail, '') FROM scheduler_runs WHERE outcome = 'error'",
    )
    .fetch_all(w.store.pool())
    .await
    .unwrap();
    assert!(failed.is_empty(), "{failed:?}");

    // The leader dies without a word; its lock goes with its connection.
    first.kill();
    // A liveness bound, not a speed claim: replica-b checks for the lock every 200 ms, and
    // a lock freed only by a TCP timeout (a leader's session left open) would take minutes.
    wait_for_run_by(&w, "replica-b", Duration::from_secs(30)).await;
    let b_started = runs(&w)
        .await
        .iter()
        .filter(|r| r.2 == "replica-b")
        .map(|r| r.1)
        .min()
        .unwrap();
    wait_for_tick_by(&w, "replica-b", b_started + chrono::Duration::seconds(3)).await;
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
    let (from, to) = (
        b_first + chrono::Duration::seconds(1),
        b_last - chrono::Duration::seconds(1),
    );
    let rounds = settled_rounds(&w, from, to).await;
    assert_every_tick_once(&rows, &rounds, from, to);
}

/// `POST /v1/schedule/{task}/run` asks through `Queue::request_run`: with two replicas and
/// every schedule off, the one leading announces itself and runs the task, once, recorded
/// at the request's tick; the other runs nothing. A request for no task is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_asked_for_by_hand_runs_once_on_the_leader_of_two_replicas() {
    let w = World::new().await;
    let _a = Replica::start_with(&w, "replica-a", "off");
    let _b = Replica::start_with(&w, "replica-b", "off");
    let queue = w.fleet.queue();
    let leader = eventually(
        "a leader announces itself",
        Duration::from_secs(30),
        async || {
            queue
                .leader()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no leader yet".to_string())
        },
    )
    .await;
    assert!(
        ["replica-a", "replica-b"].contains(&leader.replica.as_str()),
        "{leader:?}"
    );
    assert_eq!(leader.schedules.len(), Task::ALL.len(), "{leader:?}");
    assert!(
        leader.schedules.iter().all(|(_, s)| s == "off"),
        "{leader:?}"
    );

    let asked = gitfleet_queue::RunRequest::now("priority", "test");
    let nonsense = gitfleet_queue::RunRequest::now("nap", "test");
    queue.request_run(&nonsense).await.unwrap();
    queue.request_run(&asked).await.unwrap();
    let row = eventually(
        "the run asked for finishes",
        Duration::from_secs(30),
        async || {
            let rows: Vec<(String, DateTime<Utc>, String, String)> = sqlx::query_as(
            "SELECT task, tick, replica, outcome FROM scheduler_runs WHERE outcome <> 'running'",
        )
        .fetch_all(w.store.pool())
        .await
        .unwrap();
            rows.first().cloned().ok_or(format!("{rows:?}"))
        },
    )
    .await;
    assert_eq!(row.0, "priority");
    assert_eq!(Some(row.1), asked.tick(), "recorded at the request's tick");
    assert_eq!(row.2, leader.replica, "the leader ran it");
    assert_eq!(row.3, "ok");
    assert!(gitfleet_queue::is_manual_tick(row.1));
    // A few leader checks later: that one run, and nothing else (no tick is scheduled, the
    // other replica took no request, the nonsense was dropped).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = runs(&w).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let left = queue.take_run_requests(10).await.unwrap();
    assert!(left.is_empty(), "every request was taken: {left:?}");
}
