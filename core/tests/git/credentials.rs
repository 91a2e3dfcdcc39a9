//! Tokens reach a remote only as an `Authorization` header, only over the scheme and to the
//! exact host, port and path prefix their entry names, never past a redirect, and never come
//! back in a message. The servers are the testkit's `RecordingServer`s on loopback, which
//! keep every header they were sent. There is no TLS server here, so the token's positive
//! path runs over `http://` prefixes (accepted only with `PlainHttp::Allowed`, the
//! `GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS` of tests); the https rules are in the contract's
//! unit tests, and what must never happen to an `https://` token is proven here.

use base64::Engine as _;
use gitfleet_contract::{Credential, ErrorKind, JobError, PlainHttp, UrlPrefix};
use gitfleet_core::git::RunOptions;
use gitfleet_testkit::RecordingServer;

use crate::support::TestGit;

const TOKEN: &str = "tok-S3CRET-0123456789";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bot:{TOKEN}"))
    )
}

/// A runner holding the token for each prefix (`http://` ones allowed, as tests allow them).
async fn runner_with(prefixes: &[String]) -> TestGit {
    TestGit::with(|c| {
        for prefix in prefixes {
            let prefix = UrlPrefix::parse(prefix, PlainHttp::Allowed)
                .unwrap_or_else(|e| panic!("{prefix}: {e}"));
            c.credentials.insert(prefix, Credential::new("bot", TOKEN));
        }
    })
    .await
}

/// `ls-remote` of `url`, telling the runner the remote is `remote`; the servers here never
/// let it succeed.
async fn ls_remote(t: &TestGit, url: &str, remote: Option<&str>) -> JobError {
    let err = t
        .git
        .run(
            t.tmp.path(),
            &["ls-remote", "--", url],
            RunOptions {
                remote: remote.map(|r| {
                    gitfleet_contract::rules::repo_url("remote", r, true)
                        .unwrap_or_else(|e| panic!("{r}: {e}"))
                }),
                ..RunOptions::default()
            },
        )
        .await
        .expect_err("the servers here refuse or redirect");
    assert!(!err.message.contains(TOKEN), "{err}");
    assert!(
        !err.message.contains(basic().trim_start_matches("Basic ")),
        "{err}"
    );
    err
}

/// `ls-remote` of `url`, naming it as the remote (as every op does).
async fn ls_remote_named(t: &TestGit, url: &str) -> JobError {
    ls_remote(t, url, Some(url)).await
}

/// Asserts `server` was asked and never saw an `Authorization` header.
fn asked_without_a_token(server: &RecordingServer) {
    assert!(!server.requests().is_empty(), "git never asked");
    assert!(
        server.authorization_headers().is_empty(),
        "{:#?}",
        server.requests()
    );
}

#[tokio::test]
async fn a_token_reaches_its_own_server_only_as_a_basic_authorization_header() {
    let server = RecordingServer::unauthorized().unwrap();
    let t = runner_with(&[format!("http://127.0.0.1:{}/org", server.port())]).await;
    let err = ls_remote_named(&t, &server.url("org/repo.git")).await;

    let headers = server.authorization_headers();
    assert!(
        !headers.is_empty() && headers.iter().all(|h| *h == basic()),
        "{headers:?}"
    );
    for request in server.requests() {
        assert!(
            !request.target.contains(TOKEN),
            "token in the URL: {request:?}"
        );
    }
    // The server refused it: an auth failure, and the message gives nothing away.
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.message.starts_with("git ls-remote failed: "), "{err}");
}

#[tokio::test]
async fn without_a_credential_nothing_is_sent_and_the_failure_is_auth() {
    let server = RecordingServer::unauthorized().unwrap();
    let t = TestGit::new().await;
    let err = ls_remote_named(&t, &server.url("org/repo.git")).await;
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    asked_without_a_token(&server);
}

#[tokio::test]
async fn a_token_for_https_is_never_sent_over_plain_http_on_the_same_port() {
    let server = RecordingServer::unauthorized().unwrap();
    let port = server.port();
    let t = runner_with(&[
        format!("https://127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}/org"),
    ])
    .await;
    ls_remote_named(&t, &server.url("org/repo.git")).await;
    asked_without_a_token(&server);
}

#[tokio::test]
async fn a_token_for_one_port_is_never_sent_to_another_port_of_the_same_host() {
    let server = RecordingServer::unauthorized().unwrap();
    let other = RecordingServer::unauthorized().unwrap();
    // The host without a port (443), the host on another port, over https and over http:
    // before, a lookup of `127.0.0.1:<port>` fell back to the bare host and sent its token.
    let t = runner_with(&[
        "https://127.0.0.1".to_string(),
        format!("https://127.0.0.1:{}", other.port()),
        format!("http://127.0.0.1:{}", other.port()),
        "http://127.0.0.1".to_string(),
    ])
    .await;
    ls_remote_named(&t, &server.url("org/repo.git")).await;
    asked_without_a_token(&server);
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn a_token_for_a_path_prefix_is_sent_only_for_repositories_under_it() {
    let server = RecordingServer::unauthorized().unwrap();
    let t = runner_with(&[format!("http://127.0.0.1:{}/org", server.port())]).await;
    for outside in [
        "organization/x.git",
        "other/x.git",
        "Org/x.git",
        // Normalised by git to /other/x.git: not under /org, whatever it looks like.
        "org/../other/x.git",
    ] {
        ls_remote_named(&t, &server.url(outside)).await;
    }
    asked_without_a_token(&server);
    let outside = server.requests().len();

    ls_remote_named(&t, &server.url("org/team/repo.git")).await;
    let inside = &server.requests()[outside..];
    assert!(
        !inside.is_empty()
            && inside
                .iter()
                .all(|r| r.target.starts_with("/org/team/repo.git/")),
        "{inside:#?}"
    );
    assert!(
        inside
            .iter()
            .any(|r| r.header("authorization") == [basic().as_str()]),
        "{inside:#?}"
    );
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_its_target_never_reached() {
    let target = RecordingServer::unauthorized().unwrap();
    let redirect = RecordingServer::redirecting_to(&target.url("")).unwrap();
    let (r, t) = (redirect.port(), target.port());

    // Tokens for both over https: the plain-http redirect gets none, its target nothing.
    let git = runner_with(&[
        format!("https://127.0.0.1:{r}"),
        format!("https://127.0.0.1:{t}"),
    ])
    .await;
    let err = ls_remote_named(&git, &redirect.url("org/repo.git")).await;
    // Not followed, so not worth a retry either.
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.contains("returned error: 302"), "{err}");
    asked_without_a_token(&redirect);
    assert!(target.requests().is_empty(), "{:#?}", target.requests());

    // A token the redirecting server is entitled to (its own prefix) goes to it, and
    // still nothing follows the redirect: not the request, not the token.
    let git = runner_with(&[format!("http://127.0.0.1:{r}")]).await;
    let err = ls_remote_named(&git, &redirect.url("org/repo.git")).await;
    assert!(redirect.authorization_headers().contains(&basic()));
    assert!(target.requests().is_empty(), "{:#?}", target.requests());
    assert!(err.message.starts_with("git ls-remote failed: "), "{err}");
}

#[tokio::test]
async fn a_token_goes_only_to_its_own_host_and_only_when_the_remote_is_named() {
    let server = RecordingServer::unauthorized().unwrap();
    let other = RecordingServer::unauthorized().unwrap();
    let t = runner_with(&[format!("http://127.0.0.1:{}", other.port())]).await;
    let url = server.url("org/repo.git");

    // The remote named is this server's, which has no credential.
    ls_remote(&t, &url, Some(&url)).await;
    // The remote named has a credential, but git talks to a different host: the header is
    // scoped to the credential's prefix, so git does not add it.
    ls_remote(&t, &url, Some(&other.url("org/repo.git"))).await;
    // No remote named: no credential at all, and no network either (no transport but
    // local ones is allowed in a call that names no remote).
    let err = ls_remote(&t, &url, None).await;
    assert!(
        err.message.contains("transport 'http' not allowed"),
        "{err}"
    );

    assert_eq!(server.requests().len(), 2, "{:#?}", server.requests());
    asked_without_a_token(&server);
    assert!(other.requests().is_empty());
}
