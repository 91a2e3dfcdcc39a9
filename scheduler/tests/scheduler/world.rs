//! One test's world for the scheduler: a `gitfleet_testkit::Fleet` with a store (a database
//! of its own, migrated) and git (workers added by the test, sandboxes under the fleet's
//! temporary directory), a git daemon serving repositories, and the registry as the
//! scheduler's tasks read it. Everything goes when it drops.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfleet_client::EnqueueOptions;
use gitfleet_client::JobStatus;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_scheduler::{Context, SchedulerConfig};
use gitfleet_store::{SandboxRow, Store};
use gitfleet_testkit::{Fleet, GitDaemon, eventually, fixtures};
use serde_json::Value;

/// The organization the world's sandboxes are cloned for (their usage is metered to it).
pub const ORG: &str = "acme";

pub struct World {
    // Stopped first: it serves from the fleet's directory.
    daemon: Option<GitDaemon>,
    pub fleet: Fleet,
    /// The fleet's store.
    pub store: Store,
}

impl World {
    pub async fn new() -> Self {
        let fleet = Fleet::builder("sched")
            .config(WorkerConfig {
                name_stem: "sched".into(),
                concurrency: 8,
                ..Default::default()
            })
            .git()
            .store()
            .budget_refresh(Duration::from_millis(200))
            .wait_limit(Duration::from_secs(60))
            .start()
            .await;
        Self {
            daemon: None,
            store: fleet.store().clone(),
            fleet,
        }
    }

    /// A scheduler context on this world, as replica `test`.
    pub fn ctx(&self, config: SchedulerConfig) -> Context {
        Context {
            store: self.store.clone(),
            queue: self.fleet.queue().clone(),
            replica: "test".into(),
            config: SchedulerConfig {
                maintenance_wait: Duration::from_secs(60),
                ..config
            },
        }
    }

    /// Serves bare repositories `names` over `git://` on loopback; returns their URLs.
    pub fn repos(&mut self, names: &[&str]) -> Vec<String> {
        let remotes = self.fleet.remotes();
        for name in names {
            fixtures::bare_repo(&remotes, name, &[("README.md", "# sample\n")]);
        }
        let daemon = self
            .daemon
            .get_or_insert_with(|| GitDaemon::start(&remotes).unwrap());
        names.iter().map(|n| daemon.url(n)).collect()
    }

    /// Runs a job and returns its error kind (it must fail, on its one attempt).
    pub async fn fails(&self, op: &str, args: Value) -> String {
        let options = EnqueueOptions {
            max_attempts: Some(1),
            ..Fleet::for_org(ORG)
        };
        let record = self.fleet.run_with(op, args, &options).await;
        assert_eq!(record.status, JobStatus::Dead, "{op} failed");
        record.error.unwrap().kind.to_string()
    }

    /// Clones `url` as agent `agent` and returns the sandbox id.
    pub async fn clone_repo(&self, url: &str, agent: &str) -> String {
        let r = self
            .fleet
            .ok_as(
                ORG,
                "clone",
                serde_json::json!({"repo_url": url, "agent_id": agent, "task_id": "t"}),
            )
            .await;
        r["sandbox_id"].as_str().unwrap().to_string()
    }

    /// Waits until the registry's row for `id` satisfies `ok`.
    pub async fn row_where(&self, id: &str, ok: impl Fn(&SandboxRow) -> bool) -> SandboxRow {
        // 15 s: what 300 looks 50 ms apart gave before there was one `eventually`.
        eventually(
            format_args!("sandbox {id}'s row to get there"),
            Duration::from_secs(15),
            async || match self.row(id).await {
                Some(r) if ok(&r) => Ok(r),
                other => Err(format!("{other:?}")),
            },
        )
        .await
    }

    pub async fn row(&self, id: &str) -> Option<SandboxRow> {
        self.store
            .sandboxes(10_000)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.sandbox_id == id)
    }

    /// Sets a row's times as a test wants them (time under the test's control).
    pub async fn set_times(
        &self,
        id: &str,
        last_used: DateTime<Utc>,
        released: Option<DateTime<Utc>>,
    ) {
        sqlx::query("UPDATE git_sandboxes SET last_used_at = $2, terminated_at = COALESCE($3, terminated_at) WHERE sandbox_id = $1")
            .bind(id)
            .bind(last_used)
            .bind(released)
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}
