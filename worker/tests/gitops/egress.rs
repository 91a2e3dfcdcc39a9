//! The egress policy, tried as an attacker would: a `repo_url` naming a loopback, private,
//! link-local or metadata address (by address, by a name that resolves there, in IPv6 and
//! IPv4-mapped form), a redirect to one, a host outside `GITFLEET_GIT_HOSTS`. Each is
//! refused `invalid_input` naming the host before git starts, so the internal server (a
//! `RecordingServer`, which keeps every request) sees nothing and nothing is written. The
//! allowance lets the same job through; git connects to the address that was checked (a
//! name no resolver knows works only because git is pinned to it); and an internal server's
//! error body does not come back to the producer beyond what the rule keeps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use gitfleet_client::{ErrorKind, JobRecord, JobStatus};
use gitfleet_contract::EgressPolicy;
use gitfleet_core::git::EgressConfig;
use gitfleet_testkit::{Fleet, GitDaemon, HttpGitServer, RecordingServer, fixtures};
use serde_json::json;

use crate::support::{credentials_for, git_fleet, sample_repo};

/// A name no resolver knows (`.test` is reserved, RFC 2606): only a pin can take git there.
const PINNED: &str = "gitfleet-pinned.test";

async fn clone(fleet: &Fleet, url: &str) -> JobRecord {
    fleet
        .run(
            "clone",
            json!({"repo_url": url, "agent_id": "egress", "task_id": "t"}),
        )
        .await
}

/// The job was refused by the egress policy: dead at once, `invalid_input`, the message
/// naming the host and what it said.
fn refused(record: &JobRecord, host: &str, why: &str) {
    assert_eq!(record.status, JobStatus::Dead, "{record:?}");
    assert_eq!(record.attempts, 1, "never retried: {record:?}");
    let error = record.error.as_ref().expect("a dead job has an error");
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error:?}");
    assert!(
        error
            .message
            .starts_with(&format!("repo_url: the host \"{host}\" {why}")),
        "{error:?}"
    );
}

/// Every mirror any worker of `fleet` made (a refused clone makes none).
fn mirrors(fleet: &Fleet) -> Vec<PathBuf> {
    let Ok(workers) = std::fs::read_dir(fleet.sandbox_root()) else {
        return Vec::new();
    };
    workers
        .flatten()
        .filter_map(|w| std::fs::read_dir(w.path().join("mirrors")).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .collect()
}

fn default_policy() -> EgressConfig {
    EgressConfig::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_naming_the_host_and_no_request_is_made() {
    let v4 = RecordingServer::unauthorized().unwrap();
    let v6 = RecordingServer::unauthorized_at(IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap();
    let port = v4.port();
    let mut fleet = git_fleet()
        .git_with(|g| g.egress = default_policy())
        .workers(1)
        .start()
        .await;

    for (url, host, why) in [
        (
            v4.url("org/repo.git"),
            "127.0.0.1",
            "is a loopback address (not allowed by GITFLEET_GIT_ALLOW_HOSTS)",
        ),
        (v6.url("org/repo.git"), "::1", "is a loopback address"),
        // A name that resolves to loopback.
        (
            format!("http://localhost:{port}/org/repo.git"),
            "localhost",
            "resolves to a loopback address 127.0.0.1",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/org/repo.git"),
            "::ffff:127.0.0.1",
            "is a loopback address",
        ),
        (
            format!("git://127.0.0.1:{port}/repo.git"),
            "127.0.0.1",
            "is a loopback address",
        ),
        (
            format!("ssh://git@127.0.0.1:{port}/repo.git"),
            "127.0.0.1",
            "is a loopback address",
        ),
        // Nothing listens at these; a connection attempt would be a network error or a
        // timeout, not an invalid_input at once.
        (
            "https://10.20.30.40/org/repo.git".into(),
            "10.20.30.40",
            "is a private address",
        ),
        (
            "git@192.168.7.7:org/repo.git".into(),
            "192.168.7.7",
            "is a private address",
        ),
        (
            "https://100.64.1.1/org/repo.git".into(),
            "100.64.1.1",
            "is a shared (CGNAT) address",
        ),
        (
            "http://169.254.169.254/latest/meta-data.git".into(),
            "169.254.169.254",
            "is a cloud metadata address",
        ),
        (
            "http://[fd00:ec2::254]/latest.git".into(),
            "fd00:ec2::254",
            "is a cloud metadata address",
        ),
        (
            "http://metadata.google.internal/computeMetadata.git".into(),
            "metadata.google.internal",
            "is a cloud metadata service",
        ),
        (
            "https://[fe80::1]/org/repo.git".into(),
            "fe80::1",
            "is a link-local address",
        ),
    ] {
        let r = clone(&fleet, &url).await;
        refused(&r, host, why);
    }
    assert!(v4.requests().is_empty(), "{:#?}", v4.requests());
    assert!(v6.requests().is_empty(), "{:#?}", v6.requests());
    assert!(mirrors(&fleet).is_empty(), "{:?}", mirrors(&fleet));
    fleet.shutdown().await;

    // GITFLEET_GIT_ALLOW_HOSTS=127.0.0.1 (the testkit's allowance) lets the same job through
    // to the server, which refuses it itself; so does `localhost`, which resolves to that
    // address only (an address entry allows the address, whatever name leads there). ::1 is
    // still refused.
    let mut fleet = git_fleet().workers(1).start().await;
    let r = clone(&fleet, &v4.url("org/repo.git")).await;
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Auth, "{r:?}");
    let seen = v4.requests().len();
    assert!(seen > 0);
    let r = clone(&fleet, &format!("http://localhost:{port}/org/repo.git")).await;
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Auth, "{r:?}");
    assert!(v4.requests().len() > seen);
    let r = clone(&fleet, &v6.url("org/repo.git")).await;
    refused(&r, "::1", "is a loopback address");
    assert!(v6.requests().is_empty(), "{:#?}", v6.requests());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_internal_address_is_not_followed_and_the_internal_server_sees_nothing() {
    // The internal service: on 127.0.0.2, which the tests' allowance (127.0.0.1) leaves out.
    let internal =
        RecordingServer::unauthorized_at(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).unwrap();
    // An allowed host that answers with a redirect there.
    let redirect = RecordingServer::redirecting_to(&internal.url("")).unwrap();
    let mut fleet = git_fleet().workers(1).start().await;

    let r = clone(&fleet, &redirect.url("org/repo.git")).await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error:?}");
    assert!(error.message.contains("returned error: 302"), "{error:?}");
    assert!(!redirect.requests().is_empty());
    assert!(internal.requests().is_empty(), "{:#?}", internal.requests());

    // Named directly, it is refused before git starts.
    let r = clone(&fleet, &internal.url("org/repo.git")).await;
    refused(&r, "127.0.0.2", "is a loopback address");
    assert!(internal.requests().is_empty());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_gitfleet_git_hosts_is_refused_even_when_its_address_is_allowed() {
    let server = RecordingServer::unauthorized().unwrap();
    let only = |hosts: &str| {
        let policy = EgressPolicy::default()
            .allowing("127.0.0.1")
            .unwrap()
            .only_hosts(hosts)
            .unwrap();
        EgressConfig {
            policy,
            ..EgressConfig::default()
        }
    };

    let egress = only("git.example.org");
    let mut fleet = git_fleet()
        .git_with(|g| g.egress = egress)
        .workers(1)
        .start()
        .await;
    let r = clone(&fleet, &server.url("org/repo.git")).await;
    refused(
        &r,
        "127.0.0.1",
        "is not in GITFLEET_GIT_HOSTS (the hosts this fleet may reach)",
    );
    // Public, and still not listed: refused before it is even resolved.
    let r = clone(&fleet, "https://github.com/rust-lang/rust.git").await;
    refused(&r, "github.com", "is not in GITFLEET_GIT_HOSTS");
    assert!(server.requests().is_empty(), "{:#?}", server.requests());
    fleet.shutdown().await;

    let egress = only("git.example.org 127.0.0.1");
    let mut fleet = git_fleet()
        .git_with(|g| g.egress = egress)
        .workers(1)
        .start()
        .await;
    let r = clone(&fleet, &server.url("org/repo.git")).await;
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Auth, "{r:?}");
    assert!(!server.requests().is_empty());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_connects_to_the_address_that_was_checked_and_never_resolves_the_name_again() {
    // The premise: git itself cannot find this name. Were it to resolve the host again
    // after the check, every job below would fail with "could not resolve host".
    assert!(
        tokio::net::lookup_host((PINNED, 80)).await.is_err(),
        "{PINNED} must not resolve on this machine"
    );
    let probe = git_fleet().start().await;
    let bare = sample_repo(&probe.remotes(), "sample.git");
    let daemon = GitDaemon::start(&probe.remotes()).unwrap();
    let http = HttpGitServer::start(&probe.remotes(), "agent", "tok-pinned").unwrap();
    let recording = RecordingServer::unauthorized().unwrap();
    let http_prefix = format!("http://{PINNED}:{}", http.port());
    let mut fleet = git_fleet()
        .git_with(|g| {
            g.egress
                .fixed_addresses
                .insert(PINNED.into(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            g.credentials =
                credentials_for(std::slice::from_ref(&http_prefix), "agent", "tok-pinned");
        })
        .workers(1)
        .start()
        .await;

    // git:// (the URL rewritten to the address) and http (curl told the address): a clone,
    // a write and a push each, landing on the remote; a shallow copy pushes by itself (its
    // own `pushurl`), the others from the mirror.
    for (url, agent, shallow) in [
        (
            format!("git://{PINNED}:{}/sample.git", daemon.port()),
            "git",
            false,
        ),
        (
            format!("git://{PINNED}:{}/sample.git", daemon.port()),
            "shallow",
            true,
        ),
        (format!("{http_prefix}/sample.git"), "http", false),
    ] {
        let c = fleet
            .ok(
                "clone",
                json!({"repo_url": url, "agent_id": agent, "task_id": "pin", "shallow": shallow}),
            )
            .await;
        fleet
            .ok(
                "write_files",
                json!({"sandbox_id": c["sandbox_id"], "files": [{"path": "pinned.txt", "content": agent}]}),
            )
            .await;
        let p = fleet
            .ok(
                "push",
                json!({"sandbox_id": c["sandbox_id"], "message": format!("pinned over {agent}")}),
            )
            .await;
        let branch = p["branch"].as_str().unwrap();
        assert_eq!(
            fixtures::remote_log(&bare, branch)
                .first()
                .map(String::as_str),
            Some(format!("pinned over {agent}").as_str()),
            "{url}"
        );
    }
    // The token went to the name's prefix, over the pinned connection.
    assert!(http.requests().iter().any(|r| r.authorization.is_some()));

    // The name stays the name where the server sees it (the Host header; SNI and the
    // certificate check over https).
    let r = clone(
        &fleet,
        &format!("http://{PINNED}:{}/org/repo.git", recording.port()),
    )
    .await;
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Auth, "{r:?}");
    let hosts: Vec<String> = recording
        .requests()
        .iter()
        .flat_map(|r| r.header("host").into_iter().map(str::to_string))
        .collect();
    let want = format!("{PINNED}:{}", recording.port());
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| *h == want),
        "{hosts:?}"
    );
    fleet.shutdown().await;

    // A fixed address is judged like any other: the name pinned to an address the
    // allowance leaves out is refused, and git never starts.
    let mut fleet = git_fleet()
        .git_with(|g| {
            g.egress
                .fixed_addresses
                .insert(PINNED.into(), vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))]);
        })
        .workers(1)
        .start()
        .await;
    let before = recording.requests().len();
    let r = clone(
        &fleet,
        &format!("http://{PINNED}:{}/org/repo.git", recording.port()),
    )
    .await;
    refused(&r, PINNED, "resolves to a loopback address 127.0.0.3");
    assert_eq!(recording.requests().len(), before);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_body_is_cut_from_an_allowed_host_and_withheld_from_one_allowed_by_a_range() {
    // What an internal service might say when git knocks: a long text/plain error body.
    let body = format!(
        "{}END-OF-THE-INTERNAL-BODY\n",
        "internal-service line: db=10.0.0.5 user=svc\n".repeat(40)
    );
    let server = RecordingServer::failing_with(500, &body).unwrap();
    let url = server.url("org/repo.git");

    // Allowed by its exact address: the server's text is kept, but capped.
    let mut fleet = git_fleet().workers(1).start().await;
    let r = clone(&fleet, &url).await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Network, "{error:?}");
    assert!(error.message.contains("returned error: 500"), "{error:?}");
    let shown = error.message.matches("internal-service line").count();
    assert!((1..=6).contains(&shown), "{error:?}");
    assert!(
        error
            .message
            .contains("more bytes of the server's text cut]"),
        "{error:?}"
    );
    assert!(
        !error.message.contains("END-OF-THE-INTERNAL-BODY"),
        "{error:?}"
    );
    fleet.shutdown().await;

    // Allowed only because a range covers it: whatever answers there may be any internal
    // service, so none of its text reaches the producer.
    let mut fleet = git_fleet()
        .git_with(|g| g.egress = EgressConfig::allowing("127.0.0.0/8"))
        .workers(1)
        .start()
        .await;
    let r = clone(&fleet, &url).await;
    let error = r.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Network, "{error:?}");
    assert!(!error.message.contains("internal-service"), "{error:?}");
    assert!(!error.message.contains("10.0.0.5"), "{error:?}");
    assert!(
        error
            .message
            .contains("bytes of the server's text withheld: its address is internal]"),
        "{error:?}"
    );
    assert!(error.message.contains("returned error: 500"), "{error:?}");
    assert!(!server.requests().is_empty());
    fleet.shutdown().await;
}
