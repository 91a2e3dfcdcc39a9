//! The gateway's record writer with a spool directory (`GITFLEET_GATEWAY_SPOOL_DIR`): rows
//! of jobs enqueued while Postgres is away are not lost when the gateway stops; the next
//! gateway writes them once Postgres is back.

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::postgres::PgServer;
use gitfleet_testkit::{Fleet, eventually};
use serde_json::{Value, json};

use crate::support::GatewayProcess;

/// Every spool file's text, and the files' names.
fn spooled(dir: &std::path::Path) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        names.push(entry.file_name().to_string_lossy().into_owned());
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    names.sort();
    (text, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_jobs_enqueued_while_postgres_is_away_are_spooled_at_stop_and_written_by_the_next_gateway()
 {
    let pg = PgServer::start().unwrap();
    let store = gitfleet_testkit::store::store_on(&pg.url());
    store.migrate().await.unwrap();
    let key = store
        .create_key("acme", Role::Producer, Some("spool"), None)
        .await
        .unwrap()
        .token;
    // No worker: the jobs stay waiting, and only the gateway writes their rows.
    let fleet = Fleet::builder("gateway-spool").workers(0).start().await;
    let spool = fleet.tmp().join("gateway-spool");
    let url = pg.url();
    let spool_dir = spool.to_string_lossy().into_owned();
    let env = [
        ("GITFLEET_DATABASE_URL", url.as_str()),
        ("GITFLEET_GATEWAY_SPOOL_DIR", spool_dir.as_str()),
        // The key, checked once while Postgres is up, is trusted while it is away.
        ("GITFLEET_GATEWAY_KEY_CACHE_SECS", "600"),
    ];
    let http = reqwest::Client::new();
    let mut gw = GatewayProcess::start(&fleet, &env);
    let post = async |gw: &GatewayProcess, body: Value| -> Value {
        let res = http
            .post(gw.url("/v1/jobs"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        res.json().await.unwrap()
    };
    let first = post(&gw, json!({"op": "echo", "queue": "parked"})).await;
    let mut ids = vec![first["job_id"].as_str().unwrap().to_string()];
    eventually("the first job's row", Duration::from_secs(20), async || {
        store.job_row(&ids[0]).await.ok().flatten()
    })
    .await;

    pg.stop().unwrap();
    for i in 0..3 {
        let a = post(
            &gw,
            json!({"op": "echo", "args": {"i": i}, "queue": "parked"}),
        )
        .await;
        ids.push(a["job_id"].as_str().unwrap().to_string());
    }
    let bulk = post(
        &gw,
        json!([{"op": "echo", "queue": "parked"}, {"op": "echo", "queue": "parked"}]),
    )
    .await;
    for j in bulk["jobs"].as_array().unwrap() {
        ids.push(j["job_id"].as_str().unwrap().to_string());
    }
    gw.stop();
    let log = gw.log_text();
    assert!(log.contains("record writer stopped"), "{log}");
    let (text, files) = spooled(&spool);
    assert!(!files.is_empty(), "nothing spooled\n{log}");
    for id in &ids[1..] {
        assert_eq!(
            text.matches(id.as_str()).count(),
            1,
            "job {id}'s row is in the spool once: {files:?}\n{text}"
        );
    }

    pg.start_again().unwrap();
    let _next = GatewayProcess::start(&fleet, &env);
    for id in &ids {
        let row = eventually(
            &format!("job {id}'s row"),
            Duration::from_secs(30),
            async || store.job_row(id).await.ok().flatten(),
        )
        .await;
        assert_eq!(
            (
                row.status.as_str(),
                row.org_id.as_deref(),
                row.queue.as_str()
            ),
            ("waiting", Some("acme"), "parked")
        );
    }
    eventually(
        "the spool replayed and emptied",
        Duration::from_secs(30),
        async || spooled(&spool).1.is_empty().then_some(()),
    )
    .await;
    let all: HashSet<&String> = ids.iter().collect();
    assert_eq!(all.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_entries_of_actions_taken_while_postgres_is_away_are_spooled_and_written_later() {
    let pg = PgServer::start().unwrap();
    let store = gitfleet_testkit::store::store_on(&pg.url());
    store.migrate().await.unwrap();
    let key = store
        .create_key("acme", Role::Operator, Some("night shift"), None)
        .await
        .unwrap()
        .token;
    let fleet = Fleet::builder("gateway-audit-spool")
        .workers(0)
        .start()
        .await;
    let spool = fleet.tmp().join("gateway-spool");
    let url = pg.url();
    let spool_dir = spool.to_string_lossy().into_owned();
    let env = [
        ("GITFLEET_DATABASE_URL", url.as_str()),
        ("GITFLEET_GATEWAY_SPOOL_DIR", spool_dir.as_str()),
        ("GITFLEET_GATEWAY_KEY_CACHE_SECS", "600"),
    ];
    let http = reqwest::Client::new();
    let mut gw = GatewayProcess::start(&fleet, &env);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = http
            .post(gw.url("/v1/jobs"))
            .bearer_auth(&key)
            .json(&json!({"op": "echo", "delay_secs": 600}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = res.json().await.unwrap();
        ids.push(body["job_id"].as_str().unwrap().to_string());
    }

    // Postgres away: the actions are taken (they are Redis's), their entries kept.
    pg.stop().unwrap();
    let res = http
        .delete(gw.url(&format!("/v1/jobs/{}", ids[0])))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let res = http
        .post(gw.url(&format!("/v1/jobs/{}/delete", ids[1])))
        .bearer_auth(&key)
        .header("gitfleet-surface", "ui")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    gw.stop();
    let (text, files) = spooled(&spool);
    assert!(
        text.contains("job.cancel") && text.contains("job.delete"),
        "{files:?}\n{text}"
    );
    let secret = key.rsplit('_').next().unwrap();
    assert!(!text.contains(secret), "a key's secret in the spool");

    pg.start_again().unwrap();
    let _next = GatewayProcess::start(&fleet, &env);
    let entries = eventually("both entries", Duration::from_secs(30), async || {
        let page = store
            .audit_page(&gitfleet_client::store::AuditFilter {
                org: Some("acme".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .ok()?;
        (page.entries.len() == 2).then_some(page.entries)
    })
    .await;
    let actions: Vec<(&str, &str, Vec<String>)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.surface.as_str(), e.job_ids.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("job.delete", "ui", vec![ids[1].clone()]),
            ("job.cancel", "api", vec![ids[0].clone()]),
        ],
        "newest first"
    );
    assert!(
        entries
            .iter()
            .all(|e| e.key_name.as_deref() == Some("night shift") && e.outcome == "ok")
    );
    // The deleted job's row is marked too.
    let row = eventually("the deleted row", Duration::from_secs(30), async || {
        store
            .job_row(&ids[1])
            .await
            .ok()
            .flatten()
            .filter(|r| r.deleted_at.is_some())
    })
    .await;
    assert_eq!(row.status, "cancelled");
}
