//! Tokens reach a remote only as an `Authorization` header, only for their own host, and
//! never come back in a message.

use base64::Engine as _;
use gitfleet_contract::Credential;
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_core::git::RunOptions;

use crate::support::{Server, TestGit};

const TOKEN: &str = "tok-S3CRET-0123456789";

fn basic() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("bot:{TOKEN}"))
}

/// `ls-remote` against `server`, telling the runner the remote is `remote`.
async fn ls_remote(t: &TestGit, server: &Server, remote: Option<String>) -> JobError {
    let url = format!("http://127.0.0.1:{}/org/repo.git", server.port);
    t.git
        .run(
            t.tmp.path(),
            &["ls-remote", "--", &url],
            RunOptions {
                remote,
                ..RunOptions::default()
            },
        )
        .await
        .expect_err("the server answers 401")
}

fn authorization_headers(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .flat_map(|r| r.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .collect()
}

#[tokio::test]
async fn a_token_reaches_the_server_only_as_a_basic_authorization_header() {
    let server = Server::unauthorized();
    let host = format!("127.0.0.1:{}", server.port);
    let t = TestGit::with(|c| c.credentials.insert(&host, Credential::new("bot", TOKEN))).await;
    let remote = format!("http://{host}/org/repo.git");
    let err = ls_remote(&t, &server, Some(remote)).await;

    let requests = server.requests();
    assert!(!requests.is_empty());
    let headers = authorization_headers(&server);
    assert!(
        headers
            .iter()
            .any(|h| h.trim_end() == format!("Authorization: Basic {}", basic())),
        "no Basic header in {requests:?}"
    );
    for request in &requests {
        let request_line = request.lines().next().unwrap();
        assert!(
            !request_line.contains(TOKEN),
            "token in the URL: {request_line}"
        );
    }
    // The server refused it: an auth failure, and the message gives nothing away.
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.message.starts_with("git ls-remote failed: "), "{err}");
    assert!(!err.message.contains(TOKEN), "{err}");
    assert!(!err.message.contains(&basic()), "{err}");
}

#[tokio::test]
async fn without_a_credential_nothing_is_sent_and_the_failure_is_auth() {
    let server = Server::unauthorized();
    let t = TestGit::new().await;
    let remote = format!("http://127.0.0.1:{}/org/repo.git", server.port);
    let err = ls_remote(&t, &server, Some(remote)).await;
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(authorization_headers(&server).is_empty());
    assert!(!server.requests().is_empty());
}

#[tokio::test]
async fn a_token_goes_only_to_its_own_host_and_only_when_the_remote_is_named() {
    let server = Server::unauthorized();
    let other = Server::unauthorized();
    let host = format!("127.0.0.1:{}", server.port);
    let other_host = format!("127.0.0.1:{}", other.port);
    let t = TestGit::with(|c| {
        c.credentials
            .insert(&other_host, Credential::new("bot", TOKEN));
    })
    .await;

    // The remote named is this server's, whose host has no credential.
    ls_remote(&t, &server, Some(format!("http://{host}/org/repo.git"))).await;
    // The remote named has a credential, but git talks to a different host: the header is
    // scoped to the named remote's URL, so it does not follow.
    ls_remote(
        &t,
        &server,
        Some(format!("http://{other_host}/org/repo.git")),
    )
    .await;
    // No remote named: no credential at all.
    ls_remote(&t, &server, None).await;

    assert_eq!(server.requests().len(), 3, "{:?}", server.requests());
    assert!(
        authorization_headers(&server).is_empty(),
        "{:?}",
        server.requests()
    );
    assert!(other.requests().is_empty());
}
