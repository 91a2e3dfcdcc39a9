//! Reaching the queue (Redis) and the record (Postgres) as the environment configures them
//! (`GITFLEET_REDIS_URL`, `GITFLEET_DATABASE_URL`, the `GITFLEET_JOB_MAX_*` limits jobs are
//! checked by, ...), with each failure turned into the
//! [`Fail`] that picks its exit code.

use gitfleet_client::ops::JobLimits;
use gitfleet_client::store::StoreError;
use gitfleet_client::{Client, QueueConfig, Store, StoreConfig};

use crate::Fail;

/// A client acting for `org` (`--org` / `GITFLEET_ORG`), or for no organization.
pub async fn connect_as(org: Option<String>) -> Result<Client, Fail> {
    let config = QueueConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    // Jobs are checked by the limits the workers read from the same variables.
    let limits = JobLimits::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    let url = config.redacted_url();
    let client = Client::connect(config)
        .await
        .map_err(|e| Fail::Unreachable(format!("cannot reach the queue at {url}: {e}")))?
        .with_limits(limits);
    let client = match org {
        Some(org) => client
            .with_org(org)
            .map_err(|e| Fail::Invalid(format!("--org / GITFLEET_ORG: {e}")))?,
        None => client,
    };
    Ok(match open_store()? {
        Some(store) => client.with_store(store),
        None => client,
    })
}

/// A client for commands that act on jobs by id (inspect, retry): no organization.
pub async fn connect() -> Result<Client, Fail> {
    connect_as(None).await
}

/// The durable record of `GITFLEET_DATABASE_URL` (`None` when it is `none`).
fn open_store() -> Result<Option<Store>, Fail> {
    let config = StoreConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    Ok(Store::open(&config)?)
}

/// The record, for commands that cannot do without it.
pub fn need_store() -> Result<Store, Fail> {
    open_store()?
        .ok_or_else(|| Fail::Invalid("GITFLEET_DATABASE_URL is none: there is no record".into()))
}

/// Maps a failed read of the record to an exit, naming the database (redacted).
pub fn unreachable(store: &Store) -> impl Fn(StoreError) -> Fail + '_ {
    move |e| match e {
        StoreError::Config(m) | StoreError::Invalid { message: m, .. } => Fail::Invalid(m),
        other => Fail::Unreachable(format!(
            "cannot read the record at {}: {other}",
            store.redacted_url()
        )),
    }
}
