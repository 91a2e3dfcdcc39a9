//! Credentials reach git only as an HTTP header, only for the prefix they are configured for,
//! and the token never shows up in a result, an error, a log line or Redis. Without them the
//! server's refusal is an `auth` error. A token for `https://` never goes over plain http,
//! to another port, or past a redirect (the recording servers keep every header).
//!
//! The http git server speaks plain http (there is no TLS server here), so the test that
//! follows a token all the way configures an `http://` prefix, which only
//! `GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS=true` (here: `PlainHttp::Allowed`) accepts.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gitfleet_client::{ErrorKind, JobStatus};
use gitfleet_contract::{Credential, PlainHttp, UrlPrefix};
use gitfleet_testkit::http::basic_auth;
use gitfleet_testkit::{HttpGitServer, RecordingServer, eventually};
use serde_json::json;

use crate::support::{credentials_for, git_fleet, sample_repo};

const TOKEN: &str = "tok-Zq8v3-SECRET-91x";

/// Everything the process logs, for checking.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The plain values of every key under `prefix`, each read as its type says (a `DUMP` is
/// RDB-encoded and may compress a value, hiding a token in it), with the key names.
fn redis_text(conn: &mut redis::Connection, prefix: &str) -> String {
    fn flatten(v: &redis::Value, out: &mut String) {
        match v {
            redis::Value::BulkString(b) => out.push_str(&String::from_utf8_lossy(b)),
            redis::Value::SimpleString(s) => out.push_str(s),
            redis::Value::Int(i) => out.push_str(&i.to_string()),
            redis::Value::Double(d) => out.push_str(&d.to_string()),
            redis::Value::Array(items) | redis::Value::Set(items) => {
                items.iter().for_each(|i| flatten(i, out))
            }
            redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                flatten(k, out);
                flatten(v, out);
            }),
            redis::Value::Nil | redis::Value::Okay => {}
            other => panic!("a reply the check cannot read: {other:?}"),
        }
        out.push('\n');
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(conn)
        .unwrap();
    assert!(!keys.is_empty(), "no keys under {prefix}");
    let mut text = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(conn).unwrap();
        let read = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).clone(),
            "hash" => redis::cmd("HGETALL").arg(&key).clone(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
            // Expired between KEYS and TYPE.
            "none" => continue,
            other => panic!("key {key} of a type the check cannot read: {other}"),
        };
        let value: redis::Value = read.query(conn).unwrap();
        text.push_str(&key);
        text.push('\n');
        flatten(&value, &mut text);
    }
    text
}

/// Every row of every table of the record, as JSON text.
async fn postgres_text(store: &gitfleet_store::Store) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut text = String::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                .fetch_all(store.pool())
                .await
                .unwrap();
        for row in rows {
            text.push_str(&table);
            text.push(' ');
            text.push_str(&row);
            text.push('\n');
        }
    }
    text
}

/// The token authenticates every request git sends to its prefix (and only as the
/// `Authorization` header), and never shows anywhere the fleet writes: results and errors
/// (git's own messages about a server that refused it included), the plain values of every
/// Redis key, every row of the record (`jobs`, `job_runs`, the registry's `last_error`), or
/// the logs. Each place is first shown to hold what the jobs wrote (a check of an empty place
/// proves nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_only_into_a_header_and_never_into_results_errors_logs_or_redis() {
    let logs = logs();
    let probe = git_fleet().start().await;
    sample_repo(&probe.remotes(), "private.git");
    let server = HttpGitServer::start(&probe.remotes(), "agent", TOKEN).unwrap();
    // A server that wants another token: it is sent ours, and refuses it.
    let refusing = HttpGitServer::start(&probe.remotes(), "agent", "another-token").unwrap();
    let host = format!("127.0.0.1:{}", server.port());
    let url = server.url("private.git");

    // Without credentials: auth, and no retries.
    let mut fleet = git_fleet().workers(1).start().await;
    let r = fleet
        .run(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    assert_eq!(r.status, JobStatus::Dead);
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        ErrorKind::Auth,
        "{:?}",
        r.error
    );
    assert_eq!(r.attempts, 1);
    fleet.shutdown().await;

    // With them: clone, write, push; then failures whose text comes from git: a missing
    // repository, a refused token, and a pull of a repository gone from the server (an
    // error on the sandbox, kept in its registry row).
    let prefixes = [
        format!("http://{host}"),
        format!("http://127.0.0.1:{}", refusing.port()),
    ];
    let mut fleet = git_fleet()
        .git_with(|git| git.credentials = credentials_for(&prefixes, "agent", TOKEN))
        .store()
        .workers(1)
        .start()
        .await;
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "x.txt", "content": "x"}]}),
        )
        .await;
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": sandbox, "message": "via http"}),
        )
        .await;
    assert_eq!(p["branch"], "agent-a-t");
    let bad = fleet
        .run(
            "clone",
            json!({"repo_url": server.url("missing.git"), "agent_id": "b", "task_id": "t"}),
        )
        .await;
    assert_eq!(bad.status, JobStatus::Dead);
    let refused = fleet
        .run(
            "clone",
            json!({"repo_url": refusing.url("private.git"), "agent_id": "c", "task_id": "t"}),
        )
        .await;
    assert_eq!(refused.status, JobStatus::Dead);
    assert_eq!(
        refused.error.as_ref().unwrap().kind,
        ErrorKind::Auth,
        "{refused:?}"
    );
    assert!(
        refusing.auth_failures() > 0,
        "the refusing server was asked"
    );
    std::fs::rename(
        probe.remotes().join("private.git"),
        probe.remotes().join("moved.git"),
    )
    .unwrap();
    let pull = fleet
        .run_with(
            "pull",
            json!({"sandbox_id": sandbox}),
            &gitfleet_client::EnqueueOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(pull.status, JobStatus::Dead, "{pull:?}");

    let expected = basic_auth("agent", TOKEN);
    let authed: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(
        !authed.is_empty() && authed.iter().all(|a| *a == expected),
        "{authed:?}"
    );
    assert!(
        server.requests().iter().all(|r| !r.path.contains(TOKEN)),
        "not in any URL"
    );
    let encoded_secret = expected.trim_start_matches("Basic ").to_string();
    let leaks = |text: &str| text.contains(TOKEN) || text.contains(&encoded_secret);

    let seen = [
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&p).unwrap(),
        serde_json::to_string(&bad.to_cli_json()).unwrap(),
        serde_json::to_string(&refused.to_cli_json()).unwrap(),
        serde_json::to_string(&pull.to_cli_json()).unwrap(),
    ];
    for text in &seen {
        assert!(!leaks(text), "token in a result or error: {text}");
    }

    let client = redis::Client::open(fleet.test_queue().config().redis_url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let in_redis = redis_text(&mut conn, fleet.prefix());
    for known in [&sandbox, &bad.job_id, &refused.job_id] {
        assert!(
            in_redis.contains(known.as_str()),
            "{known} in Redis:\n{in_redis}"
        );
    }
    assert!(!leaks(&in_redis), "token in Redis:\n{in_redis}");

    let store = fleet.store().clone();
    let row = eventually(
        "the pull's failure in the registry",
        Duration::from_secs(30),
        async || {
            let rows = store.sandboxes(10).await.map_err(|e| e.to_string())?;
            rows.into_iter()
                .find(|r| r.sandbox_id == sandbox && r.error_count == 1)
                .ok_or_else(|| "no error yet".to_string())
        },
    )
    .await;
    let last_error = row.last_error.expect("the pull's failure");
    // git's own words about the remote the token is for.
    assert!(
        last_error.starts_with("invalid_input: git ") && last_error.contains(&host),
        "{last_error}"
    );
    for job in [&bad, &refused, &pull] {
        eventually("the job's dead row", Duration::from_secs(30), async || {
            store
                .job_row(&job.job_id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|r| r.status == "dead" && r.error_message.is_some())
                .ok_or_else(|| "not dead yet".to_string())
        })
        .await;
    }
    let in_postgres = postgres_text(&store).await;
    for known in [
        &sandbox,
        &bad.job_id,
        &refused.job_id,
        &pull.job_id,
        &last_error,
    ] {
        assert!(
            in_postgres.contains(known.as_str()),
            "{known} in Postgres:\n{in_postgres}"
        );
    }
    assert!(
        in_postgres.contains("job_runs ") && in_postgres.contains("git_sandboxes "),
        "{in_postgres}"
    );
    assert!(!leaks(&in_postgres), "token in Postgres:\n{in_postgres}");

    fleet.shutdown().await;
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for known in [&bad.job_id, &refused.job_id, &pull.job_id] {
        assert!(logged.contains(known.as_str()), "{known} in the logs");
    }
    assert!(!leaks(&logged), "token in the logs");
    drop(probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_jobs_never_send_an_https_token_over_http_to_another_port_or_past_a_redirect() {
    let same_port = RecordingServer::unauthorized().unwrap();
    let other_port = RecordingServer::unauthorized().unwrap();
    let target = RecordingServer::unauthorized().unwrap();
    let redirect = RecordingServer::redirecting_to(&target.url("")).unwrap();
    // Tokens over https for the very ports the jobs reach over http, and for the bare host
    // (port 443), which the old lookup fell back to from any `127.0.0.1:<port>`.
    let prefixes: Vec<String> = [same_port.port(), redirect.port(), target.port()]
        .iter()
        .map(|port| format!("https://127.0.0.1:{port}"))
        .chain(["https://127.0.0.1".to_string()])
        .collect();
    let mut fleet = git_fleet()
        .git_with(|git| git.credentials = credentials_for(&prefixes, "agent", TOKEN))
        .workers(1)
        .start()
        .await;

    for (name, server) in [
        ("same port, plain http", &same_port),
        ("another port", &other_port),
        ("a redirect", &redirect),
    ] {
        let r = fleet
            .run(
                "clone",
                json!({"repo_url": server.url("org/repo.git"), "agent_id": "a", "task_id": "t"}),
            )
            .await;
        assert_eq!(r.status, JobStatus::Dead, "{name}: {r:?}");
        // Refused (no token: auth) or redirected (never followed: invalid_input), neither
        // worth a retry.
        assert_eq!(r.attempts, 1, "{name}: {r:?}");
        let error = serde_json::to_string(&r.error).unwrap();
        assert!(!error.contains(TOKEN), "{name}: {error}");
        assert!(!server.requests().is_empty(), "{name}: git never asked");
        assert!(
            server.authorization_headers().is_empty(),
            "{name}: {:#?}",
            server.requests()
        );
    }
    assert!(
        target.requests().is_empty(),
        "the redirect was followed: {:#?}",
        target.requests()
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_restricted_to_an_organization_serves_only_its_jobs_even_from_a_warm_mirror() {
    let probe = git_fleet().start().await;
    sample_repo(&probe.remotes(), "private.git");
    let server = HttpGitServer::start(&probe.remotes(), "agent", TOKEN).unwrap();
    let host = format!("127.0.0.1:{}", server.port());
    let url = server.url("private.git");
    let mut fleet = git_fleet()
        .git_with(|git| {
            let prefix = UrlPrefix::parse(&format!("http://{host}"), PlainHttp::Allowed).unwrap();
            git.credentials.insert(
                prefix,
                Credential::new("agent", TOKEN).for_orgs(vec!["acme".into()]),
            );
        })
        .workers(1)
        .start()
        .await;
    let clone = json!({"repo_url": url, "agent_id": "a", "task_id": "t"});

    // acme's job gets the token, and the worker's mirror now holds the private repository.
    let mine = fleet.ok_as("acme", "clone", clone.clone()).await;
    let expected = basic_auth("agent", TOKEN);
    let sent_before = server
        .requests()
        .iter()
        .filter(|r| r.authorization.as_deref() == Some(expected.as_str()))
        .count();
    assert!(sent_before > 0, "acme's clone authenticated");
    let requests_before = server.requests().len();

    // Another organization, and a job of none, ask for the same repository: the server is
    // asked without the token (and refuses), and nothing comes from acme's warm mirror.
    for org in [Some("evil"), None] {
        let r = match org {
            Some(org) => fleet.run_as(org, "clone", clone.clone()).await,
            None => fleet.run("clone", clone.clone()).await,
        };
        assert_eq!(r.status, JobStatus::Dead, "{org:?}: {r:?}");
        assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Auth, "{r:?}");
    }
    let later = &server.requests()[requests_before..];
    assert!(
        !later.is_empty(),
        "the others' clones asked the server themselves"
    );
    assert!(
        later.iter().all(|r| r.authorization.is_none()),
        "the token went out for another organization: {later:?}"
    );

    // acme's own sandbox is untouched and acme still clones (from its mirror).
    fleet
        .ok_as("acme", "status", json!({"sandbox_id": mine["sandbox_id"]}))
        .await;
    fleet.ok_as("acme", "clone", clone).await;
    fleet.shutdown().await;
    drop(probe);
}
