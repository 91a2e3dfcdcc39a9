//! The Repositories and Sandboxes views' data through the API, counted by a real worker
//! against a git daemon on loopback: how each sandbox was made, cache hits and misses,
//! pushes and conflicts, each worker's mirror; exact, per organization, without
//! credentials, and a flush the writer applies twice counted once.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use gitfleet_client::store::{Record, RepoStatsDelta, RepoStatsFlush};
use gitfleet_contract::Role;
use gitfleet_testkit::fixtures;
use gitfleet_testkit::{GitDaemon, eventually};
use serde_json::{Value, json};

use crate::support::{Answer, World, world};

/// Enqueues `job` and waits for it to end; its record.
async fn run(w: &World, key: &str, job: Value) -> Value {
    let created = w.post(key, "/v1/jobs", &job).await;
    assert_eq!(created.status, 201, "{job}: {}", created.text);
    let id = created.body["job_id"].as_str().unwrap().to_string();
    let done = w.get(key, &format!("/v1/jobs/{id}?wait=60")).await;
    assert_eq!(done.status, 200, "{}", done.text);
    done.body
}

/// The repository `url` as `key` sees it, once `ready` holds for it (workers flush every
/// few seconds).
async fn repository(
    w: &World,
    key: &str,
    query: &str,
    url: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    eventually(
        "the repository's figures",
        Duration::from_secs(30),
        async || {
            let a: Answer = w.get(key, &format!("/v1/repositories{query}")).await;
            if a.status != 200 {
                return Err(a.text);
            }
            a.body["repositories"]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["repo_url"] == url).cloned())
                .filter(|r| ready(r))
                .ok_or(a.text)
        },
    )
    .await
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let t = entry.file_type().unwrap();
        if t.is_dir() {
            total += bytes_under(&entry.path());
        } else if t.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_clone_then_a_cache_hit_a_push_and_a_conflict_are_counted_exactly_per_organization()
{
    let w = world().await;
    let bare = fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let acme = w.key("acme", Role::Operator).await;
    let globex = w.key("globex", Role::Operator).await;
    let admin = w.key("root", Role::Admin).await;

    // The first clone on this worker clones the mirror: cold.
    let one = w
        .run_ok(
            &acme,
            json!({"op": "clone", "args": {"repo_url": url, "agent_id": "a1", "task_id": "t1"}}),
        )
        .await;
    assert_eq!(
        (one["source"].as_str(), one["cache_hit"].as_bool()),
        (Some("cold"), Some(false)),
        "{one}"
    );
    let sb1 = one["sandbox_id"].as_str().unwrap().to_string();
    w.run_ok(&acme, json!({"op": "write_files", "args": {"sandbox_id": sb1, "files": [{"path": "notes.md", "content": "n\n"}]}}))
        .await;
    let pushed = w
        .run_ok(
            &acme,
            json!({"op": "push", "args": {"sandbox_id": sb1, "message": "notes"}}),
        )
        .await;
    assert_eq!(pushed["rebased"], false, "{pushed}");
    let released = w
        .run_ok(&acme, json!({"op": "release", "args": {"sandbox_id": sb1}}))
        .await;
    assert_eq!(released["cached"], true, "{released}");

    // The second recycles the released copy: a cache hit.
    let two = w
        .run_ok(
            &acme,
            json!({"op": "clone", "args": {"repo_url": url, "agent_id": "a2", "task_id": "t2"}}),
        )
        .await;
    assert_eq!(
        (two["source"].as_str(), two["cache_hit"].as_bool()),
        (Some("cache"), Some(true)),
        "{two}"
    );
    let sb2 = two["sandbox_id"].as_str().unwrap().to_string();
    w.run_ok(&acme, json!({"op": "write_files", "args": {"sandbox_id": sb2, "files": [{"path": "README.md", "content": "mine\n"}]}}))
        .await;
    // main moves under it, rewriting the same file: its push to main conflicts.
    w.run_ok(
        &acme,
        json!({"op": "change", "args": {"repo_url": url, "agent_id": "a3", "task_id": "t3", "target_branch": "main", "message": "theirs", "files": [{"path": "README.md", "content": "theirs\n"}]}}),
    )
    .await;
    let conflict = run(
        &w,
        &acme,
        json!({"op": "push", "args": {"sandbox_id": sb2, "message": "mine", "target_branch": "main"}}),
    )
    .await;
    assert_eq!(conflict["status"], "dead", "{conflict}");
    assert_eq!(conflict["error"]["kind"], "conflict", "{conflict}");
    assert_eq!(
        fixtures::git(&bare, ["show", "main:README.md"]).unwrap(),
        "theirs"
    );

    // Another organization's clone of the same repository: the mirror is there, and the
    // pool (one warm sandbox in the test fleet, taken by the first clone) is empty: a new
    // sandbox from the template.
    let three = w
        .run_ok(
            &globex,
            json!({"op": "clone", "args": {"repo_url": url, "agent_id": "g1", "task_id": "t1"}}),
        )
        .await;
    assert_eq!(three["source"], "template", "{three}");

    // acme's figures, exactly, and nothing of globex's.
    let worker = w.fleet.worker_ids()[0].to_string();
    let acme_row = repository(&w, &acme, "", &url, |r| {
        r["uses"] == 2 && r["conflicts"] == 1 && r["pushes"] == 2
    })
    .await;
    for (field, want) in [
        ("uses", 2),
        ("cache_hits", 1),
        ("cache_misses", 1),
        ("made_cold", 1),
        ("made_cache", 1),
        ("made_pool", 0),
        ("made_template", 0),
        ("pushes", 2),
        ("rebases", 0),
        ("conflicts", 1),
    ] {
        assert_eq!(acme_row[field], want, "{field}: {acme_row}");
    }
    assert_eq!(acme_row["pinned"], false, "{acme_row}");
    assert!(acme_row["fetches"].as_i64().unwrap() >= 1, "{acme_row}");
    assert!(acme_row["last_fetch_at"].is_string(), "{acme_row}");
    let workers = acme_row["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{acme_row}");
    assert_eq!(workers[0]["worker_id"], worker.as_str());
    assert_eq!(
        (
            workers[0]["uses"].as_i64(),
            workers[0]["conflicts"].as_i64()
        ),
        (Some(2), Some(1))
    );
    // The mirror's size as it is on disk now (measured after its last use).
    let mirrors = w.fleet.sandbox_root().join(&worker).join("mirrors");
    let mirror = std::fs::read_dir(&mirrors)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "git"))
        .unwrap();
    let on_disk = bytes_under(&mirror);
    assert!(on_disk > 0);
    let measured = repository(&w, &acme, "", &url, |r| {
        r["workers"][0]["mirror_bytes"].as_u64() == Some(on_disk)
    })
    .await;
    assert_eq!(measured["workers"][0]["mirror_bytes"], on_disk);

    let globex_row = repository(&w, &globex, "", &url, |r| r["uses"] == 1).await;
    for (field, want) in [
        ("uses", 1),
        ("made_template", 1),
        ("made_pool", 0),
        ("made_cold", 0),
        ("cache_hits", 0),
        ("pushes", 0),
        ("conflicts", 0),
    ] {
        assert_eq!(globex_row[field], want, "{field}: {globex_row}");
    }
    // globex cannot ask for acme's.
    w.get(&globex, "/v1/repositories?org=acme")
        .await
        .problem(403, "auth");
    // An admin sees both, together or one organization's.
    let all = repository(&w, &admin, "", &url, |r| r["uses"] == 3).await;
    assert_eq!(
        (all["made_template"].as_i64(), all["conflicts"].as_i64()),
        (Some(1), Some(1))
    );
    let only_acme = repository(&w, &admin, "?org=acme", &url, |_| true).await;
    assert_eq!(only_acme["uses"], 2, "{only_acme}");

    // Pinned once the scheduler's priority task puts it in the top ten.
    sqlx::query(
        "INSERT INTO repo_priority (repo_url, rank, uses, last_used_at, computed_at) \
         VALUES ($1, 1, 3, now(), now())",
    )
    .bind(&url)
    .execute(w.fleet.store().pool())
    .await
    .unwrap();
    let pinned = repository(&w, &acme, "?pinned=true", &url, |_| true).await;
    assert_eq!(
        (pinned["pinned"].as_bool(), pinned["rank"].as_i64()),
        (Some(true), Some(1))
    );
    let others = w.get(&acme, "/v1/repositories?pinned=false").await;
    assert_eq!(others.body["repositories"], json!([]), "{}", others.text);

    // The Sandboxes view: how each was made, time left on the released copy.
    let listed = eventually("the sandboxes' rows", Duration::from_secs(20), async || {
        let a = w.get(&acme, "/v1/sandboxes").await;
        let rows = a.body["sandboxes"].as_array().cloned().unwrap_or_default();
        (rows.len() == 2).then_some(rows).ok_or(a.text)
    })
    .await;
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|s| s["sandbox_id"] == id)
            .unwrap()
            .clone()
    };
    let (s1, s2) = (by_id(&sb1), by_id(&sb2));
    assert_eq!(s1["source"], "cold", "{s1}");
    assert_eq!(s2["source"], "cache", "{s2}");
    assert_eq!(s1["ttl_tier"], "hot", "{s1}");
    let left = s1["time_left_secs"].as_f64().unwrap();
    assert!((7000.0..=7200.0).contains(&left), "{s1}");
    assert!(
        s2["time_left_secs"].is_null(),
        "a live sandbox has no expiry: {s2}"
    );
    assert!(s2["age_secs"].as_f64().unwrap() >= 0.0, "{s2}");
    assert_eq!(s1["use_count"], 4, "clone, write, push, release: {s1}");

    // The overview's cache hit rate: acme made 2, one from the cache; the fleet 3.
    let rate = w.get(&acme, "/v1/cache/hit-rate").await;
    assert_eq!(rate.status, 200, "{}", rate.text);
    assert_eq!(
        rate.body["last_hour"],
        json!({"made": 2, "cache_hits": 1, "rate": 0.5}),
        "{}",
        rate.text
    );
    let fleet = w.get(&admin, "/v1/cache/hit-rate").await;
    assert_eq!(fleet.body["last_day"]["made"], 3, "{}", fleet.text);
    let none = w.get(&globex, "/v1/cache/hit-rate").await;
    assert_eq!(none.body["last_hour"]["cache_hits"], 0, "{}", none.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_urls_never_keep_a_password_and_a_flush_written_twice_counts_once() {
    let w = world().await;
    fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let acme = w.key("acme", Role::Operator).await;
    let admin = w.key("root", Role::Admin).await;
    const PASSWORD: &str = "pw-Zq71vN";

    // A clone with a password in its URL is refused at the door, the password repeated
    // nowhere.
    let with_password =
        daemon
            .url("repo.git")
            .replacen("git://", &format!("git://agent:{PASSWORD}@"), 1);
    let refused = w
        .post(
            &acme,
            "/v1/jobs",
            &json!({"op": "clone", "args": {"repo_url": with_password, "agent_id": "a1", "task_id": "t1"}}),
        )
        .await;
    assert_eq!(
        refused.problem(400, "invalid_input")["field"],
        "args.repo_url"
    );
    assert!(!refused.text.contains(PASSWORD), "{}", refused.text);

    // A record that carries one all the same (a worker's flush, replayed by the writer:
    // written twice) is stored without it, and counted once.
    let leaky = format!("https://agent:{PASSWORD}@example.com/r.git");
    let flush = |seq: u64, made_cache: u64| {
        Record::RepoStats(RepoStatsFlush {
            worker_id: "replayed-worker".into(),
            seq,
            rows: vec![RepoStatsDelta {
                repo_url: leaky.clone(),
                org_id: Some("acme".into()),
                made_cache,
                pushes: 1,
                last_used_at: Some(Utc::now()),
                ..Default::default()
            }],
            at: Utc::now(),
        })
    };
    let store = w.fleet.store();
    store.apply(&[flush(1, 2)]).await.unwrap();
    store.apply(&[flush(1, 2), flush(1, 2)]).await.unwrap();
    store.apply(&[flush(2, 1)]).await.unwrap();
    let shown = "https://***@example.com/r.git";
    let row = repository(&w, &acme, "", shown, |_| true).await;
    assert_eq!(
        (row["made_cache"].as_i64(), row["pushes"].as_i64()),
        (Some(3), Some(2)),
        "{row}"
    );

    // Nowhere in the database (every row of every table) and in no answer of the API.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "repo_stats"), "{tables:?}");
    for table in &tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                .fetch_all(store.pool())
                .await
                .unwrap();
        for r in rows {
            assert!(!r.contains(PASSWORD), "{table}: {r}");
        }
    }
    for path in ["/v1/repositories", "/v1/sandboxes", "/v1/jobs"] {
        let a = w.get(&admin, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(!a.text.contains(PASSWORD), "{path}: {}", a.text);
    }
    assert!(!w.gw.log_text().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_list_pages_by_cursor_in_either_order_and_names_bad_parameters() {
    let w = world().await;
    let acme = w.key("acme", Role::Viewer).await;
    let store = w.fleet.store();
    // Three repositories, used 1, 3 and 2 times, the last one used most recently.
    let rows: Vec<RepoStatsDelta> = [("a", 1, 30), ("b", 3, 20), ("c", 2, 10)]
        .into_iter()
        .map(|(name, uses, ago)| RepoStatsDelta {
            repo_url: format!("https://example.com/{name}.git"),
            org_id: Some("acme".into()),
            made_pool: uses,
            last_used_at: Some(Utc::now() - chrono::Duration::seconds(ago)),
            ..Default::default()
        })
        .collect();
    store
        .apply(&[Record::RepoStats(RepoStatsFlush {
            worker_id: "w-pages".into(),
            seq: 1,
            rows,
            at: Utc::now(),
        })])
        .await
        .unwrap();
    let names = |a: &Answer| -> Vec<String> {
        a.body["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["repo_url"]
                    .as_str()
                    .unwrap()
                    .replace("https://example.com/", "")
            })
            .collect()
    };
    for (sort, want) in [
        ("recent", ["c.git", "b.git", "a.git"]),
        ("uses", ["b.git", "c.git", "a.git"]),
    ] {
        let mut path = format!("/v1/repositories?sort={sort}&limit=2");
        let mut seen = Vec::new();
        loop {
            let a = w.get(&acme, &path).await;
            assert_eq!(a.status, 200, "{}", a.text);
            seen.extend(names(&a));
            match a.body["next"].as_str() {
                Some(next) => {
                    assert_eq!(
                        a.header("link"),
                        Some(format!("<{next}>; rel=\"next\"").as_str())
                    );
                    path = next.to_string();
                }
                None => break,
            }
        }
        assert_eq!(seen, want, "sort={sort}");
    }
    w.get(&acme, "/v1/repositories?sort=size")
        .await
        .problem(400, "invalid_input");
    let p = w.get(&acme, "/v1/repositories?limit=0").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "limit");
    let p = w.get(&acme, "/v1/repositories?cursor=nope!").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "cursor");
}
