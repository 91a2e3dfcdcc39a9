//! The commands on the durable record (Postgres): `jobs`, `sandboxes`, `schedule` and `orgs`
//! list rows as a table (or JSON with `--json`); `orgs set-budget` sets a budget; `migrate`
//! applies the migrations. Each needs the record: without one it is bad usage (exit 2).

use gitfleet_client::JobStatus;
use gitfleet_client::store;
use serde_json::json;

use crate::connect::{need_store, unreachable};
use crate::output::{print, print_rows};
use crate::{Fail, List, OrgsCommand, tables};

/// `gitfleet jobs`: jobs, newest first, filtered by status, op and organization.
pub async fn jobs(
    status: Option<String>,
    op: Option<String>,
    org: Option<String>,
    list: List,
) -> Result<u8, Fail> {
    if let Some(s) = &status {
        s.parse::<JobStatus>()
            .map_err(|e| Fail::Invalid(format!("--status: {e}")))?;
    }
    let store = need_store()?;
    let filter = store::JobFilter {
        status,
        op,
        org,
        limit: list.limit,
        ..Default::default()
    };
    let rows = store.jobs(&filter).await.map_err(unreachable(&store))?;
    print_rows(&rows, list.json, tables::jobs);
    Ok(0)
}

/// `gitfleet sandboxes`: the sandbox registry, most recently used first.
pub async fn sandboxes(list: List) -> Result<u8, Fail> {
    let store = need_store()?;
    let rows = store
        .sandboxes(list.limit)
        .await
        .map_err(unreachable(&store))?;
    print_rows(&rows, list.json, tables::sandboxes);
    Ok(0)
}

/// `gitfleet schedule`: the scheduler's recent runs.
pub async fn schedule(list: List) -> Result<u8, Fail> {
    let store = need_store()?;
    let rows = store
        .scheduler_runs(list.limit)
        .await
        .map_err(unreachable(&store))?;
    print_rows(&rows, list.json, tables::schedule);
    Ok(0)
}

/// `gitfleet orgs`: budget and spend per organization; `orgs set-budget <org> <usd|none>`
/// sets one and prints that organization's row.
pub async fn orgs(command: Option<OrgsCommand>, json: bool) -> Result<u8, Fail> {
    let store = need_store()?;
    if let Some(OrgsCommand::SetBudget { org, usd }) = command {
        let budget = if usd.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(
                usd.parse::<f64>()
                    .ok()
                    .filter(|u| u.is_finite() && *u >= 0.0)
                    .ok_or_else(|| {
                        Fail::Invalid(format!("usd: {usd:?} is not a number >= 0 or none"))
                    })?,
            )
        };
        store
            .set_budget(&org, budget)
            .await
            .map_err(unreachable(&store))?;
        let row = store.org(&org).await.map_err(unreachable(&store))?;
        print(&serde_json::to_value(row).expect("plain data"));
        return Ok(0);
    }
    let rows = store.orgs().await.map_err(unreachable(&store))?;
    print_rows(&rows, json, tables::orgs);
    Ok(0)
}

/// `gitfleet migrate`: applies the migrations not yet applied.
pub async fn migrate() -> Result<u8, Fail> {
    let store = need_store()?;
    store.migrate().await.map_err(unreachable(&store))?;
    print(&json!({"migrated": true, "database": store.redacted_url()}));
    Ok(0)
}
