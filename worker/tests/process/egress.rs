//! The egress policy in the real `gitfleet-worker` binary, configured only by its
//! environment: with nothing set, a `repo_url` on loopback (by address or by `localhost`)
//! is refused `invalid_input` naming the host, and the server there never sees a request;
//! `GITFLEET_GIT_ALLOW_HOSTS=127.0.0.1` lets the same job through, and `GITFLEET_GIT_HOSTS`
//! restricts the fleet to the hosts it lists.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use gitfleet_client::{ErrorKind, JobRecord, JobStatus};
use gitfleet_testkit::{RecordingServer, eventually};
use serde_json::json;

use crate::processes::ProcessFleet;

async fn clone(q: &ProcessFleet, url: &str) -> JobRecord {
    let job = q
        .submit(
            "jobs",
            "clone",
            json!({"repo_url": url, "agent_id": "egress", "task_id": "t"}),
        )
        .await;
    q.wait_for_job(
        &job.job_id,
        Duration::from_secs(30),
        "the clone ended",
        |r| r.status.is_final(),
    )
    .await
}

fn error_of(r: &JobRecord) -> (ErrorKind, &str) {
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    let e = r.error.as_ref().expect("a dead job has an error");
    (e.kind, e.message.as_str())
}

#[tokio::test]
async fn the_worker_binary_refuses_loopback_by_default_and_lets_the_allowed_address_through() {
    let server = RecordingServer::unauthorized().unwrap();
    let url = server.url("org/repo.git");
    let by_name = format!("http://localhost:{}/org/repo.git", server.port());

    // Nothing set (an empty value is unset): the default policy.
    let q = ProcessFleet::new().await;
    let w = q.spawn_worker(&[("GITFLEET_GIT_ALLOW_HOSTS", "")]).await;
    for (url, host, why) in [
        (url.as_str(), "127.0.0.1", "is a loopback address"),
        (
            by_name.as_str(),
            "localhost",
            "resolves to a loopback address 127.0.0.1",
        ),
    ] {
        let r = clone(&q, url).await;
        let (kind, message) = error_of(&r);
        assert_eq!(kind, ErrorKind::InvalidInput, "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
        assert!(
            message.starts_with(&format!("repo_url: the host \"{host}\" {why}")),
            "{message}\n{}",
            w.log_text()
        );
    }
    assert!(server.requests().is_empty(), "{:#?}", server.requests());
    drop(w);

    // GITFLEET_GIT_HOSTS names another host: still refused, though the address is allowed.
    let q = ProcessFleet::new().await;
    let w = q
        .spawn_worker(&[
            ("GITFLEET_GIT_ALLOW_HOSTS", "127.0.0.1"),
            ("GITFLEET_GIT_HOSTS", "git.example.org"),
        ])
        .await;
    let r = clone(&q, &url).await;
    let (kind, message) = error_of(&r);
    assert_eq!(kind, ErrorKind::InvalidInput, "{r:?}");
    assert!(
        message.contains("\"127.0.0.1\" is not in GITFLEET_GIT_HOSTS"),
        "{message}"
    );
    assert!(server.requests().is_empty(), "{:#?}", server.requests());
    drop(w);

    // GITFLEET_GIT_ALLOW_HOSTS=127.0.0.1: the same job reaches the server (which refuses it
    // itself: auth).
    let q = ProcessFleet::new().await;
    let w = q
        .spawn_worker(&[("GITFLEET_GIT_ALLOW_HOSTS", "127.0.0.1")])
        .await;
    let r = clone(&q, &url).await;
    let (kind, _) = error_of(&r);
    assert_eq!(kind, ErrorKind::Auth, "{r:?}\n{}", w.log_text());
    assert!(!server.requests().is_empty());
    drop(w);
}

#[tokio::test]
async fn a_bad_egress_entry_stops_the_worker_at_startup_naming_the_variable_and_the_entry() {
    let q = ProcessFleet::new().await;
    let sandboxes = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet-worker"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GITFLEET_") {
            cmd.env_remove(k);
        }
    }
    let mut child = Reaped(
        cmd.env("GITFLEET_REDIS_URL", &q.config().redis_url)
            .env("GITFLEET_KEY_PREFIX", q.prefix())
            .env("GITFLEET_DATABASE_URL", "none")
            .env("GITFLEET_SANDBOX_ROOT", sandboxes.path())
            .env("GITFLEET_GIT_ALLOW_HOSTS", "127.0.0.1,10.0.0.0/40")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gitfleet-worker"),
    );
    let status = eventually(
        "the worker exits",
        Duration::from_secs(15),
        async || match child.0.try_wait().expect("check the worker") {
            Some(status) => Ok(status),
            None => Err("still running".to_string()),
        },
    )
    .await;
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("GITFLEET_GIT_ALLOW_HOSTS: entry 2 (\"10.0.0.0/40\") is not a valid CIDR"),
        "{stderr}"
    );
}

/// A child process killed and reaped when dropped, whatever happens to the test.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
