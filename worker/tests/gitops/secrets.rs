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

use gitfleet_client::{ErrorKind, JobStatus};
use gitfleet_contract::{Credential, PlainHttp, UrlPrefix};
use gitfleet_testkit::http::basic_auth;
use gitfleet_testkit::{HttpGitServer, RecordingServer};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_only_into_a_header_and_never_into_results_errors_logs_or_redis() {
    let logs = logs();
    let probe = git_fleet().start().await;
    sample_repo(&probe.remotes(), "private.git");
    let server = HttpGitServer::start(&probe.remotes(), "agent", TOKEN).unwrap();
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

    // With them: clone, write, push; then a failing push whose error text comes from git.
    let mut fleet = git_fleet()
        .git_with(|git| {
            git.credentials = credentials_for(&[format!("http://{host}")], "agent", TOKEN)
        })
        .workers(1)
        .start()
        .await;
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": c["sandbox_id"], "files": [{"path": "x.txt", "content": "x"}]}),
        )
        .await;
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": c["sandbox_id"], "message": "via http"}),
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

    let seen = [
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&p).unwrap(),
        serde_json::to_string(&bad.to_cli_json()).unwrap(),
    ];
    for text in &seen {
        assert!(!text.contains(TOKEN), "token in a result or error: {text}");
    }
    let encoded_secret = expected.trim_start_matches("Basic ").to_string();
    let client = redis::Client::open(fleet.test_queue().config().redis_url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", fleet.prefix()))
        .query(&mut conn)
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query(&mut conn)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&dump);
        assert!(
            !text.contains(TOKEN) && !text.contains(&encoded_secret),
            "token in Redis key {key}"
        );
    }
    fleet.shutdown().await;
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        !logged.contains(TOKEN) && !logged.contains(&encoded_secret),
        "token in the logs"
    );
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
