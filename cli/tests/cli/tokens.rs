//! `gitfleet job` and `gitfleet sandboxes` never print a git token: not in a job's record,
//! not in its history from Postgres, not in the registry's last error, for jobs whose git
//! talked to servers with the token (and was refused by one).

use std::time::Duration;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobStatus};
use gitfleet_contract::{Credential, Credentials, PlainHttp, UrlPrefix};
use gitfleet_testkit::http::basic_auth;
use gitfleet_testkit::postgres::TestDatabase;
use gitfleet_testkit::store::store_on;
use gitfleet_testkit::{Fleet, HttpGitServer, eventually, fixtures};
use serde_json::{Value, json};

use super::Env;

const TOKEN: &str = "tok-Cli7w-SECRET-42k";

/// What `gitfleet job <id>` prints once the history shows the job `status`.
async fn job_with_history(env: &Env, id: &str, status: &str) -> Value {
    eventually(
        format!("job {id} with its {status} history"),
        Duration::from_secs(30),
        async || {
            let (_, v) = env.run_json(&["job", id]).await;
            let runs_final = v["history"]["runs"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["outcome"] != "running"));
            if v["history"]["status"] == status && runs_final {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_and_sandboxes_never_print_the_token_git_used() {
    let db = TestDatabase::create().unwrap();
    let remotes = tempfile::tempdir().unwrap();
    fixtures::bare_repo(
        remotes.path(),
        "private.git",
        &[("README.md", "# private\n")],
    );
    let server = HttpGitServer::start(remotes.path(), "agent", TOKEN).unwrap();
    // Sent the token too, it wants another and refuses.
    let refusing = HttpGitServer::start(remotes.path(), "agent", "another-token").unwrap();
    let mut credentials = Credentials::default();
    for port in [server.port(), refusing.port()] {
        let prefix =
            UrlPrefix::parse(&format!("http://127.0.0.1:{port}"), PlainHttp::Allowed).unwrap();
        credentials.insert(prefix, Credential::new("agent", TOKEN));
    }
    let mut env = Env {
        fleet: Fleet::builder("cli")
            .git_with(|git| git.credentials = credentials)
            .store_on(store_on(&db.url))
            .start()
            .await,
        database_url: db.url.clone(),
    };
    let (code, v) = env.run_json(&["migrate"]).await;
    assert_eq!(code, 0, "{v}");
    env.fleet.add_worker().await;

    let clone = env
        .fleet
        .run(
            "clone",
            json!({"repo_url": server.url("private.git"), "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let sandbox = clone.result.as_ref().unwrap()["sandbox_id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = env
        .fleet
        .run(
            "clone",
            json!({"repo_url": refusing.url("private.git"), "agent_id": "b", "task_id": "t"}),
        )
        .await;
    assert_eq!(
        refused.error.as_ref().unwrap().kind,
        ErrorKind::Auth,
        "{refused:?}"
    );
    // The repository gone from the server: the sandbox's pull fails, with git's words
    // about the remote the token is for, into the registry's last error.
    std::fs::rename(
        remotes.path().join("private.git"),
        remotes.path().join("moved.git"),
    )
    .unwrap();
    let pull = env
        .fleet
        .run_with(
            "pull",
            json!({"sandbox_id": sandbox}),
            &EnqueueOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(pull.status, JobStatus::Dead, "{pull:?}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.authorization.as_deref() == Some(basic_auth("agent", TOKEN).as_str())),
        "git sent the token"
    );

    let encoded = basic_auth("agent", TOKEN)
        .trim_start_matches("Basic ")
        .to_string();
    let leaks = |text: &str| text.contains(TOKEN) || text.contains(&encoded);
    for (job, status) in [(&clone, "done"), (&refused, "dead"), (&pull, "dead")] {
        let shown = job_with_history(&env, &job.job_id, status).await;
        let text = shown.to_string();
        assert_eq!(shown["job_id"], job.job_id.as_str(), "{text}");
        if status == "dead" {
            assert!(
                shown["history"]["error_message"].is_string(),
                "the history's error: {text}"
            );
        }
        assert!(!leaks(&text), "the token in `gitfleet job`: {text}");
    }

    let port = format!("127.0.0.1:{}", server.port());
    let text = eventually(
        "the pull's failure in `gitfleet sandboxes`",
        Duration::from_secs(30),
        async || {
            let (code, lines) = env.run(&["sandboxes", "--json"], None).await;
            let text = lines.join("\n");
            let rows: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            let failed = rows.as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r["sandbox_id"] == sandbox.as_str()
                        && r["last_error"].as_str().is_some_and(|e| e.contains(&port))
                })
            });
            if code == 0 && failed {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    assert!(!leaks(&text), "the token in `gitfleet sandboxes`: {text}");
    env.fleet.shutdown().await;
}
