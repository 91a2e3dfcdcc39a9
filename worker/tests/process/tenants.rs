//! The tenant boundary, tried as an attacker would against the `gitfleet-worker` binary: one
//! organization's jobs never reach another's sandbox (and cannot tell it is there), never
//! get another's job through an idempotency key, and never run the fleet's internal ops; a
//! fleet that requires an organization refuses a job without one; an organization's live
//! sandboxes are limited fleet-wide.

use std::path::Path;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobRecord, JobSpec, JobStatus, QueueError};
use gitfleet_testkit::{GitDaemon, fixtures};
use serde_json::{Value, json};

use crate::processes::ProcessFleet;

/// Whether `path` is in the sandbox's working tree: what `status` reports of it.
fn mentions(status: &Value, path: &str) -> bool {
    ["staged", "modified", "untracked"].iter().any(|k| {
        status[k]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p.as_str() == Some(path)))
    })
}

fn error_of(r: &JobRecord) -> (ErrorKind, String) {
    let e = r
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("no error: {r:?}"));
    (e.kind, e.message.clone())
}

fn remote(tmp: &Path) -> GitDaemon {
    let remotes = tmp.join("remotes");
    fixtures::bare_repo(&remotes, "repo.git", &[("README.md", "# tenants\n")]);
    GitDaemon::start(&remotes).expect("start git daemon")
}

#[tokio::test]
async fn another_organizations_ops_on_a_sandbox_are_answered_as_for_one_that_does_not_exist() {
    let q = ProcessFleet::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let daemon = remote(tmp.path());
    let w = q.spawn_worker(&[]).await;
    q.wait_until_registered(&w.id).await;
    let own = format!("worker:{}", w.id);
    let url = daemon.url("repo.git");

    let cloned = q
        .run_as(
            Some("acme"),
            "jobs",
            "clone",
            json!({"repo_url": url, "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    assert_eq!(cloned.status, JobStatus::Done, "{cloned:?}");
    let id = cloned.result.unwrap()["sandbox_id"]
        .as_str()
        .unwrap()
        .to_string();

    // What a sandbox that does not exist on that worker is answered with.
    let ghost = format!("{}.01ARZ3NDEKTSV4RRFFQ69G5FAV", w.id);
    let (kind, missing) = error_of(
        &q.run_as(Some("evil"), &own, "status", json!({"sandbox_id": ghost}))
            .await,
    );
    assert_eq!(kind, ErrorKind::SandboxNotFound);
    let for_id = |m: &str, id: &str| m.replace(id, "<id>");

    // The attack: plant a file in acme's sandbox, as another organization, then every other
    // op on it. Each is answered exactly as for the sandbox that does not exist.
    let attacks = [
        (
            "write_files",
            json!({"sandbox_id": id, "files": [{"path": "PLANTED.md", "content": "pwned\n"}]}),
        ),
        ("status", json!({"sandbox_id": id})),
        ("diff", json!({"sandbox_id": id})),
        ("pull", json!({"sandbox_id": id})),
        ("push", json!({"sandbox_id": id, "message": "planted"})),
        ("release", json!({"sandbox_id": id})),
    ];
    for org in [Some("evil"), None] {
        for (op, args) in &attacks {
            let r = q.run_as(org, &own, op, args.clone()).await;
            assert_eq!(r.status, JobStatus::Dead, "{op} from {org:?}: {r:?}");
            assert_eq!(r.attempts, 1, "refused at once, never retried: {r:?}");
            let (kind, message) = error_of(&r);
            assert_eq!(
                (kind, for_id(&message, &id)),
                (ErrorKind::SandboxNotFound, for_id(&missing, &ghost)),
                "{op} from {org:?} is told what a missing sandbox is told"
            );
        }
    }

    // The sandbox is unchanged and still acme's: no planted file, not released, not pushed.
    let status = q
        .run_as(Some("acme"), &own, "status", json!({"sandbox_id": id}))
        .await;
    assert_eq!(status.status, JobStatus::Done, "{status:?}");
    let status = status.result.unwrap();
    assert!(!mentions(&status, "PLANTED.md"), "{status}");
    assert_eq!(status["ahead"], 0, "{status}");
    let branches = fixtures::git(&daemon.root().join("repo.git"), ["branch", "--list"]).unwrap();
    assert!(
        !branches.contains("agent-a1-t1"),
        "nothing was pushed: {branches}"
    );

    // acme itself carries on as usual, and its release works.
    let wrote = q
        .run_as(
            Some("acme"),
            &own,
            "write_files",
            json!({"sandbox_id": id, "files": [{"path": "NOTES.md", "content": "mine\n"}]}),
        )
        .await;
    assert_eq!(wrote.status, JobStatus::Done, "{wrote:?}");
    let released = q
        .run_as(Some("acme"), &own, "release", json!({"sandbox_id": id}))
        .await;
    assert_eq!(released.status, JobStatus::Done, "{released:?}");
}

#[tokio::test]
async fn idempotency_keys_are_scoped_by_organization_and_a_key_names_one_job() {
    let q = ProcessFleet::new().await;
    let _w = q.spawn_worker(&[]).await;
    let client = &q.client;
    let submit = |org: &'static str, args: Value| async move {
        let options = EnqueueOptions {
            org: Some(org.into()),
            idempotency_key: Some("task-42".into()),
            ..Default::default()
        };
        client
            .submit("jobs", &JobSpec::new("echo", args), &options)
            .await
    };
    let first = submit("acme", json!({"secret": "acme's"})).await.unwrap();
    assert!(first.created);
    let done = q
        .wait_for_job(
            &first.job_id,
            std::time::Duration::from_secs(30),
            "echo",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(done.result, Some(json!({"secret": "acme's"})));

    // Another organization with the same key gets a job of its own, not acme's.
    let other = submit("evil", json!({"secret": "acme's"})).await.unwrap();
    assert!(other.created, "{other:?}");
    assert_ne!(other.job_id, first.job_id);
    let theirs = q
        .wait_for_job(
            &other.job_id,
            std::time::Duration::from_secs(30),
            "echo",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(theirs.org.as_deref(), Some("evil"));

    // The same organization, the same job: the first one, as before.
    let again = submit("acme", json!({"secret": "acme's"})).await.unwrap();
    assert_eq!(
        (again.job_id.as_str(), again.created),
        (first.job_id.as_str(), false)
    );

    // The same key with a different job is a conflict naming the key, not the first job.
    match submit("acme", json!({"secret": "changed"})).await {
        Err(QueueError::Invalid(e)) => {
            assert_eq!(e.kind, ErrorKind::Conflict, "{e:?}");
            assert!(e.message.contains("\"task-42\""), "{e:?}");
        }
        other => panic!("a different job under the same key was answered {other:?}"),
    }
}

#[tokio::test]
async fn a_fleet_that_requires_an_organization_refuses_a_job_without_one() {
    let q = ProcessFleet::new().await;
    let w = q.spawn_worker(&[("GITFLEET_REQUIRE_ORG", "true")]).await;
    q.wait_until_registered(&w.id).await;

    let anonymous = q.run_as(None, "jobs", "echo", json!({"n": 1})).await;
    assert_eq!(anonymous.status, JobStatus::Dead, "{anonymous:?}");
    let (kind, message) = error_of(&anonymous);
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(message.starts_with("org:"), "{message}");
    assert!(anonymous.result.is_none(), "it never ran");

    let named = q
        .run_as(Some("acme"), "jobs", "echo", json!({"n": 1}))
        .await;
    assert_eq!(named.status, JobStatus::Done, "{named:?}");
    assert_eq!(named.result, Some(json!({"n": 1})));

    // An org in the args is not an identity: refused (the client refuses it at submit;
    // here it comes straight into Redis, as a script would send it), not run for it.
    let raw = q
        .client
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("echo", json!({"org_id": "acme"})),
            &Default::default(),
        )
        .await
        .unwrap();
    let in_args = q
        .wait_for_job(
            &raw.job_id,
            std::time::Duration::from_secs(30),
            "echo",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(in_args.status, JobStatus::Dead, "{in_args:?}");
    assert!(
        error_of(&in_args).1.starts_with("args.org_id:"),
        "{in_args:?}"
    );

    // The fleet's own ops carry no organization, and are not refused for it.
    let own = format!("worker:{}", w.id);
    let maintain = q
        .run_as(
            None,
            &own,
            "maintain",
            json!({"task": "health_check", "worker_id": w.id}),
        )
        .await;
    assert_ne!(
        maintain.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::InvalidInput),
        "{maintain:?}"
    );
}

#[tokio::test]
async fn maintain_from_a_producer_with_an_organization_is_refused() {
    let q = ProcessFleet::new().await;
    let w = q.spawn_worker(&[]).await;
    q.wait_until_registered(&w.id).await;
    let own = format!("worker:{}", w.id);
    let args = json!({"task": "rebuild_template", "worker_id": w.id});

    // The client refuses it before it is enqueued...
    let refused = q
        .client
        .clone()
        .with_org("acme")
        .unwrap()
        .submit(
            &own,
            &JobSpec::new("maintain", args.clone()),
            &Default::default(),
        )
        .await;
    match refused {
        Err(QueueError::Invalid(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains("internal"), "{e:?}");
        }
        other => panic!("the client let maintain through: {other:?}"),
    }
    // ...and the worker, when it gets there anyway (straight into Redis, as a script would).
    let raw = q
        .client
        .queue()
        .enqueue(
            &own,
            &JobSpec::new("maintain", args.clone()),
            &EnqueueOptions {
                org: Some("acme".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = q
        .wait_for_job(
            &raw.job_id,
            std::time::Duration::from_secs(30),
            "maintain",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    let (kind, message) = error_of(&r);
    assert_eq!(kind, ErrorKind::InvalidInput);
    assert!(message.contains("internal"), "{message}");
    assert!(r.result.is_none(), "no template was rebuilt");

    // From the fleet itself (the scheduler, an operator) it runs.
    let ok = q.run_as(None, &own, "maintain", args).await;
    assert_eq!(ok.status, JobStatus::Done, "{ok:?}");
}

#[tokio::test]
async fn an_organizations_live_sandboxes_are_limited_fleet_wide() {
    let q = ProcessFleet::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let daemon = remote(tmp.path());
    let env = [("GITFLEET_ORG_MAX_SANDBOXES", "2")];
    // Two workers: the limit is the organization's, not one worker's.
    let a = q.spawn_worker(&env).await;
    let b = q.spawn_worker(&env).await;
    let url = daemon.url("repo.git");
    let clone = |org: &'static str, task: &'static str| {
        let url = url.clone();
        let q = &q;
        async move {
            q.run_as(
                Some(org),
                "jobs",
                "clone",
                json!({"repo_url": url, "agent_id": "a", "task_id": task}),
            )
            .await
        }
    };
    let first = clone("acme", "t1").await;
    let second = clone("acme", "t2").await;
    let mut ids = Vec::new();
    for r in [&first, &second] {
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        ids.push(
            r.result.as_ref().unwrap()["sandbox_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let third = clone("acme", "t3").await;
    assert_eq!(third.status, JobStatus::Dead, "{third:?}");
    let (kind, message) = error_of(&third);
    assert_eq!(kind, ErrorKind::BudgetExceeded, "{message}");
    assert!(
        message.contains("acme") && message.contains('2'),
        "{message}"
    );
    assert_eq!(third.attempts, 1, "never retried");
    assert_eq!(q.client.queue().org_sandbox_count("acme").await.unwrap(), 2);

    // Another organization is not held back by acme's sandboxes.
    let other = clone("other", "t1").await;
    assert_eq!(other.status, JobStatus::Done, "{other:?}");

    // A release makes room again.
    let worker_of = |id: &str| format!("worker:{}", id.split('.').next().unwrap());
    let released = q
        .run_as(
            Some("acme"),
            &worker_of(&ids[0]),
            "release",
            json!({"sandbox_id": ids[0]}),
        )
        .await;
    assert_eq!(released.status, JobStatus::Done, "{released:?}");
    let fourth = clone("acme", "t4").await;
    assert_eq!(fourth.status, JobStatus::Done, "{fourth:?}");
    let owner = q
        .client
        .queue()
        .sandbox_owner(
            fourth.result.as_ref().unwrap()["sandbox_id"]
                .as_str()
                .unwrap(),
        )
        .await
        .unwrap()
        .expect("the registry has it");
    assert_eq!(owner.org.as_deref(), Some("acme"));
    assert_eq!(owner.agent, "a");
    assert!(owner.worker == a.id || owner.worker == b.id, "{owner:?}");
}
