//! Hostile input never runs a command or touches a file outside the sandbox, and gets an
//! `invalid_input` naming the field: at enqueue time from the client, and again in the
//! worker for a producer that skips the client's checks.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobSpec, JobStatus, QueueError};
use gitfleet_testkit::fixtures::git;
use gitfleet_testkit::{Fleet, GitDaemon, eventually};
use serde_json::{Value, json};

use crate::support::{git_fleet, sample_repo};

/// The client refuses it, and a worker given it anyway (enqueued past the client's checks)
/// refuses it too, before it runs anything: `invalid_input` with the client's very message,
/// which names `field`, in one attempt, in the job's record in Redis and in its row and
/// run in Postgres. (A worker that skipped the check would run git, whose failure reads
/// differently, or look for the sandbox and answer `sandbox_not_found`.)
async fn refused_both_ways(fleet: &Fleet, op: &str, args: Value, field: &str) {
    let spec = JobSpec::new(op, args.clone());
    let refusal = match fleet
        .client()
        .submit("jobs", &spec, &EnqueueOptions::default())
        .await
    {
        Err(QueueError::Invalid(e)) => e,
        other => panic!("{args}: the client should refuse it, got {other:?}"),
    };
    assert_eq!(refusal.kind, ErrorKind::InvalidInput, "{args}: {refusal:?}");
    assert!(
        refusal.message.starts_with(&format!("{field}: ")),
        "{args}: the client's refusal names {field}: {refusal:?}"
    );
    let queue = gitfleet_client::Client::route(&spec);
    let job = fleet
        .client()
        .queue()
        .enqueue(&queue, &spec, &EnqueueOptions::default())
        .await
        .unwrap();
    let record = fleet
        .client()
        .wait(&job.job_id, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, JobStatus::Dead, "{args}");
    assert_eq!(record.attempts, 1, "{args}: never retried");
    assert_eq!(
        record.error,
        Some(refusal.clone()),
        "{args}: the worker refuses it as the client does"
    );
    let store = fleet.store();
    let row = eventually(
        format!("the dead row of {}", job.job_id),
        Duration::from_secs(30),
        async || {
            store
                .job_history(&job.job_id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|h| h.job.status == "dead")
                .ok_or_else(|| "not dead yet".to_string())
        },
    )
    .await;
    assert_eq!(
        (
            row.job.error_kind.as_deref(),
            row.job.error_message.as_deref(),
            row.job.attempts
        ),
        (Some("invalid_input"), Some(refusal.message.as_str()), 1),
        "{args}: {row:?}"
    );
    let runs: Vec<_> = row
        .runs
        .iter()
        .map(|r| {
            (
                r.outcome.as_str(),
                r.error_kind.as_deref(),
                r.error_message.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [(
            "dead",
            Some("invalid_input"),
            Some(refusal.message.as_str())
        )],
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_urls_branches_and_paths_are_refused_and_run_nothing() {
    let mut fleet = git_fleet().store().workers(1).start().await;
    let marker = fleet.tmp().join("pwned");
    let m = marker.display();
    for url in [
        format!("ext::sh -c touch% {m}"),
        format!("-u{m}"),
        format!("--upload-pack=touch {m}"),
        "file:///etc".to_string(),
        "fd::17".to_string(),
        "http://user:hunter2@127.0.0.1:1/x.git".to_string(),
        "git://-oProxyCommand=x/repo".to_string(),
        "https://host/repo\n.git".to_string(),
    ] {
        refused_both_ways(
            &fleet,
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
            "repo_url",
        )
        .await;
    }
    for branch in [
        "..",
        "-x",
        "a b",
        "a\u{7}b",
        "x/../y",
        "refs/heads/../../x",
        "@{-1}",
    ] {
        refused_both_ways(
            &fleet,
            "clone",
            json!({"repo_url": "git://127.0.0.1:1/r.git", "branch": branch, "agent_id": "a", "task_id": "t"}),
            "branch",
        )
        .await;
    }
    refused_both_ways(
        &fleet,
        "clone",
        json!({"repo_url": "git://127.0.0.1:1/r.git", "agent_id": "-rf", "task_id": "t"}),
        "agent_id",
    )
    .await;
    let sandbox = format!("{}.{}", fleet.worker_ids()[0], ulid::Ulid::new());
    for path in [
        "../x",
        "/etc/passwd",
        ".git/config",
        "a/.GIT/hooks/pre-commit",
        "a/../../x",
        "x\0y",
    ] {
        refused_both_ways(
            &fleet,
            "write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": path, "content": "x"}]}),
            "files[0].path",
        )
        .await;
    }
    assert!(!marker.exists(), "no hostile command ran");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_symlink_the_repository_contains_is_refused() {
    let mut fleet = git_fleet().workers(1).start().await;
    let outside = fleet.tmp().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A repository whose tree holds links pointing out of any checkout.
    let bare = sample_repo(&fleet.remotes(), "links.git");
    let work = fleet.tmp().join("author");
    git(
        fleet.tmp(),
        [
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    )
    .unwrap();
    symlink(&outside, work.join("escape")).unwrap();
    symlink(outside.join("file.txt"), work.join("escape-file")).unwrap();
    git(&work, ["add", "-A"]).unwrap();
    git(&work, ["commit", "--quiet", "-m", "links"]).unwrap();
    git(&work, ["push", "--quiet", "origin", "main"]).unwrap();
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();

    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": daemon.url("links.git"), "agent_id": "a", "task_id": "t"}),
        )
        .await;
    for path in ["escape/pwn.txt", "escape-file"] {
        let r = fleet
            .run(
                "write_files",
                json!({"sandbox_id": c["sandbox_id"], "files": [
                    {"path": "fine.txt", "content": "ok"},
                    {"path": path, "content": "pwned"},
                ]}),
            )
            .await;
        assert_eq!(r.status, JobStatus::Dead);
        let e = r.error.unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("symlink"), "{e:?}");
    }
    // `change` builds its commit without a working copy: the same links are refused, from
    // the branch's tree, and nothing reaches the remote.
    let before = git(&bare, ["rev-parse", "main"]).unwrap();
    for path in ["escape/pwn.txt", "escape-file"] {
        let r = fleet
            .run(
                "change",
                json!({"repo_url": daemon.url("links.git"), "agent_id": "a", "task_id": "c",
                       "target_branch": "main", "message": "through a link",
                       "files": [{"path": "fine.txt", "content": "ok"},
                                 {"path": path, "content": "pwned"}]}),
            )
            .await;
        assert_eq!(r.status, JobStatus::Dead);
        let e = r.error.unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(
            e.message.contains("files[1].path") && e.message.contains("symlink"),
            "{e:?}"
        );
    }
    assert_eq!(git(&bare, ["rev-parse", "main"]).unwrap(), before);
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing was written outside"
    );
    let s = fleet
        .ok("status", json!({"sandbox_id": c["sandbox_id"]}))
        .await;
    assert_eq!(
        s["untracked"],
        json!([]),
        "a refused batch writes nothing, not even its good files"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn oversize_payloads_are_refused_at_enqueue() {
    let fleet = git_fleet().start().await;
    let big = "x".repeat(2 << 20);
    let spec = JobSpec::new(
        "write_files",
        json!({"sandbox_id": format!("w-1.{}", ulid::Ulid::new()), "files": [{"path": "big", "content": big}]}),
    );
    match fleet
        .client()
        .submit("jobs", &spec, &EnqueueOptions::default())
        .await
    {
        Err(QueueError::Invalid(e)) => assert!(e.message.contains("over the limit"), "{e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let _ = Path::new("/");
}
