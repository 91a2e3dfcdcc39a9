//! The durable record for one test: a [`gitfleet_store::Store`] on a database of its own
//! ([`crate::postgres::TestDatabase`]), migrated, and dropped with everything in it when
//! the test ends.

use std::time::Duration;

use gitfleet_store::{Store, StoreConfig};

use crate::postgres::TestDatabase;

/// How a test's store is configured unless it says otherwise: the database at `url`, and
/// the budget list re-read every 100 ms (not every 5 s), so a test that changes a budget
/// sees it take effect at once.
pub fn store_config(url: &str) -> StoreConfig {
    StoreConfig {
        database_url: Some(url.to_string()),
        budget_refresh: Duration::from_millis(100),
        ..Default::default()
    }
}

/// A store on the database at `url` (a private server, a database made by hand), not
/// migrated. Opening connects lazily: a server that is down fails the first query.
pub fn store_on(url: &str) -> Store {
    Store::open(&store_config(url))
        .expect("a valid store configuration")
        .expect("a database URL, not `none`")
}

/// A migrated store on a database of its own. The fields drop in order: the store's pool
/// first, then the database (with `FORCE`, so connections still open do not keep it).
pub struct TestStore {
    pub store: Store,
    pub db: TestDatabase,
}

impl TestStore {
    /// A fresh database on the machine's Postgres, migrated, with [`store_config`].
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// [`TestStore::new`], with `change` applied to the store's configuration.
    pub async fn with_config(change: impl FnOnce(&mut StoreConfig)) -> Self {
        let db = TestDatabase::create().expect("postgres is reachable");
        let mut config = store_config(&db.url);
        change(&mut config);
        let store = Store::open(&config)
            .expect("a valid store configuration")
            .expect("a database URL, not `none`");
        store.migrate().await.expect("migrations apply");
        Self { store, db }
    }

    /// The database's URL, for processes (a CLI run, a scheduler) that keep the same record.
    pub fn url(&self) -> &str {
        &self.db.url
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn database_exists(name: &str) -> bool {
        let out = Command::new("psql")
            .args(["-X", "-tA", "-d", &crate::postgres::admin_url(), "-c"])
            .arg(format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
            ))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    #[tokio::test]
    async fn a_test_store_is_migrated_and_its_database_is_gone_once_it_drops() {
        let t = TestStore::new().await;
        // A query on the record's tables works: the migrations ran.
        let none = t
            .store
            .job_history("01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .await
            .expect("the jobs table exists");
        assert!(none.is_none());
        assert!(t.store.sandboxes(10).await.unwrap().is_empty());
        let name = t.db.name.clone();
        assert!(database_exists(&name));
        drop(t);
        assert!(!database_exists(&name), "database {name} dropped");
    }
}
