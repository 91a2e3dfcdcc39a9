//! A `gitfleet-scheduler` never logs the passwords in its Redis and Postgres URLs: not while
//! it leads and runs its tasks, and not when Redis refuses its password or its database is
//! missing. The Redis is one of the test's own that demands a password; the machine's
//! Postgres trusts every local connection, so a password in its URL is accepted and only has
//! to be kept out of the logs.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use gitfleet_scheduler::Task;
use gitfleet_testkit::postgres::with_password;
use gitfleet_testkit::{RedisServer, TestStore, eventually};

const REDIS_PASSWORD: &str = "redis-pw-Hd52qW";
const PG_PASSWORD: &str = "pg-pw-Tn38vB";

/// A scheduler process logging (at debug) to a file of its own; killed when dropped.
struct Scheduler {
    child: Child,
    log: PathBuf,
}

impl Scheduler {
    /// Starts replica `replica` on `redis_url` and `database_url`, every task every second.
    fn start(replica: &str, redis_url: &str, database_url: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scheduler-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{replica}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet-scheduler"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GITFLEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GITFLEET_DATABASE_URL", database_url)
            .env("GITFLEET_REDIS_URL", redis_url)
            .env("GITFLEET_KEY_PREFIX", format!("test-{replica}:"))
            .env("GITFLEET_SCHEDULER_REPLICA", replica)
            .env("GITFLEET_SCHEDULER_LEADER_CHECK_MS", "200")
            .env("GITFLEET_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for task in Task::ALL {
            cmd.env(
                format!("GITFLEET_SCHEDULE_{}", task.name().to_uppercase()),
                "* * * * * *",
            );
        }
        let child = cmd.spawn().expect("gitfleet-scheduler starts");
        Self { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How it exited, once it has (within 30 s).
    async fn exited(&mut self) -> ExitStatus {
        eventually(
            "the scheduler to exit",
            Duration::from_secs(30),
            async || {
                self.child
                    .try_wait()
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| self.log_text())
            },
        )
        .await
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for a look when the test failed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn assert_no_password(log: &str) {
    assert!(
        !log.contains(REDIS_PASSWORD),
        "the Redis password in a log:\n{log}"
    );
    assert!(
        !log.contains(PG_PASSWORD),
        "the Postgres password in a log:\n{log}"
    );
}

fn replica(what: &str) -> String {
    format!("{what}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_never_logs_the_passwords_in_its_redis_and_postgres_urls() {
    let redis = RedisServer::start_with_password(REDIS_PASSWORD).await;
    let redis_url = redis.url_with_password(REDIS_PASSWORD);
    let store = TestStore::new().await;
    let pg_url = with_password(store.url(), PG_PASSWORD);
    assert!(pg_url.contains(&format!(":{PG_PASSWORD}@")), "{pg_url}");

    // Leading, with its tasks run and recorded through both URLs.
    let name = replica("secrets");
    let running = Scheduler::start(&name, &redis_url, &pg_url);
    eventually(
        "a run recorded by the replica",
        Duration::from_secs(30),
        async || {
            let runs = store
                .store
                .scheduler_runs(100)
                .await
                .map_err(|e| e.to_string())?;
            if runs.iter().any(|r| r.replica == name) {
                Ok(())
            } else {
                Err(running.log_text())
            }
        },
    )
    .await;
    let log = running.log_text();
    assert!(
        log.contains("leading: this replica fires the ticks"),
        "{log}"
    );
    assert!(log.contains(&name), "{log}");
    assert_no_password(&log);
    drop(running);

    // Its database missing: it exits, naming the database.
    let (base, _) = store.url().rsplit_once('/').expect("a database in the URL");
    let missing = with_password(&format!("{base}/gitfleet_missing_db"), PG_PASSWORD);
    let mut s = Scheduler::start(&replica("missing-db"), &redis_url, &missing);
    assert!(!s.exited().await.success(), "{}", s.log_text());
    let log = s.log_text();
    assert!(log.contains("cannot migrate Postgres at"), "{log}");
    assert_no_password(&log);

    // Refused by Redis (a wrong password, the Postgres one: a word no log may show either):
    // it exits, naming the server.
    let wrong = redis.url_with_password(PG_PASSWORD);
    let mut s = Scheduler::start(&replica("refused"), &wrong, &pg_url);
    assert!(!s.exited().await.success(), "{}", s.log_text());
    let log = s.log_text();
    assert!(log.contains("cannot connect to Redis at"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{}", redis.port())),
        "{log}"
    );
    assert_no_password(&log);
}
