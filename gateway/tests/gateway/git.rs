//! An agent's whole flow through the API against a real git daemon: clone, write, status,
//! push, release; the commit is on the remote exactly once. Sandboxes are an
//! organization's own: another's cannot list, use or release them.

use gitfleet_contract::Role;
use std::time::Duration;

use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{GitDaemon, eventually};
use serde_json::json;

use crate::support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_write_status_push_release_through_the_api_lands_one_commit() {
    let w = world().await;
    let bare = fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let key = w.key("acme", Role::Operator).await;
    let evil = w.key("evil", Role::Operator).await;

    let clone = w
        .run_ok(
            &key,
            json!({"op": "clone", "args": {"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}}),
        )
        .await;
    let sandbox = clone["sandbox_id"].as_str().unwrap().to_string();
    assert_eq!(clone["agent_branch"], "agent-a1-t1");

    let written = w
        .run_ok(
            &key,
            json!({"op": "write_files", "args": {"sandbox_id": sandbox, "files": [{"path": "notes/a.md", "content": "from the API\n"}]}}),
        )
        .await;
    assert_eq!(written, json!({"written": 1, "deleted": 0}));
    let status = w
        .run_ok(
            &key,
            json!({"op": "status", "args": {"sandbox_id": sandbox}}),
        )
        .await;
    assert_eq!(status["untracked"], json!(["notes/a.md"]), "{status}");

    // Another organization cannot see, use or release the sandbox.
    let listed = w.get(&evil, "/v1/sandboxes").await;
    assert_eq!(listed.body["sandboxes"], json!([]), "{}", listed.text);
    let theirs = w
        .post(&evil, "/v1/jobs", &json!({"op": "write_files", "args": {"sandbox_id": sandbox, "files": [{"path": "evil.md", "content": "x"}]}}))
        .await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    let id = theirs.body["job_id"].as_str().unwrap();
    let r = w.get(&evil, &format!("/v1/jobs/{id}?wait=30")).await;
    assert_eq!(r.body["status"], "dead", "{}", r.text);
    assert_eq!(r.body["error"]["kind"], "sandbox_not_found", "{}", r.text);
    w.delete(&evil, &format!("/v1/sandboxes/{sandbox}"))
        .await
        .problem(404, "not_found");

    // Ours lists it (the registry's rows are written in the background).
    eventually(
        "the registry lists our sandbox",
        Duration::from_secs(20),
        async || {
            let listed = w.get(&key, "/v1/sandboxes").await;
            let rows = listed.body["sandboxes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rows.iter()
                .any(|s| s["sandbox_id"] == sandbox.as_str() && s["org_id"] == "acme")
                .then_some(())
                .ok_or(listed.text)
        },
    )
    .await;
    let usage = w.get(&key, "/v1/orgs/acme/usage").await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    assert_eq!(usage.body["live_sandboxes"], 1, "{}", usage.text);

    let pushed = w
        .run_ok(
            &key,
            json!({"op": "push", "args": {"sandbox_id": sandbox, "message": "notes from the API"}}),
        )
        .await;
    let sha = pushed["commit_sha"].as_str().unwrap().to_string();
    let log = git(&bare, ["log", "--format=%H %s", "agent-a1-t1"]).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.ends_with(" notes from the API"))
            .count(),
        1,
        "{log}"
    );
    assert!(log.starts_with(&sha), "{log}");
    let tree = git(&bare, ["ls-tree", "-r", "--name-only", "agent-a1-t1"]).unwrap();
    assert!(!tree.contains("evil.md"), "{tree}");

    // Release through the sandbox route: the worker answers the release job.
    let released = w.delete(&key, &format!("/v1/sandboxes/{sandbox}")).await;
    assert_eq!(released.status, 200, "{}", released.text);
    assert_eq!(released.body["status"], "done", "{}", released.text);
    assert!(
        released
            .header("location")
            .unwrap()
            .starts_with("/v1/jobs/")
    );
    let usage = w.get(&key, "/v1/orgs/acme/usage").await;
    assert_eq!(usage.body["live_sandboxes"], 0, "{}", usage.text);
    w.delete(&key, &format!("/v1/sandboxes/{sandbox}"))
        .await
        .problem(404, "not_found");
}

/// A job's record answers its runs from the history: the worker, sandbox and git steps
/// of the push (staged and committed in the sandbox, pushed by the group commit), the way
/// the dashboard's job detail shows them; a job with no run yet answers no runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_record_answers_each_run_with_its_worker_sandbox_and_git_steps() {
    let w = world().await;
    fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let key = w.key("acme", Role::Operator).await;
    let worker = w.fleet.worker_ids()[0].to_string();

    let clone = w
        .run_ok(
            &key,
            json!({"op": "clone", "args": {"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}}),
        )
        .await;
    let sandbox = clone["sandbox_id"].as_str().unwrap().to_string();
    w.run_ok(
        &key,
        json!({"op": "write_files", "args": {"sandbox_id": sandbox, "files": [{"path": "a.md", "content": "a\n"}]}}),
    )
    .await;
    let created = w
        .post(
            &key,
            "/v1/jobs",
            &json!({"op": "push", "args": {"sandbox_id": sandbox, "message": "a"}}),
        )
        .await;
    let id = created.body["job_id"].as_str().unwrap().to_string();
    let done = w.get(&key, &format!("/v1/jobs/{id}?wait=60")).await;
    assert_eq!(done.body["status"], "done", "{}", done.text);

    // Runs are written in the background: the run reads `running` until its end is.
    let body = eventually(
        "the push's run, ended",
        Duration::from_secs(30),
        async || {
            let a = w.get(&key, &format!("/v1/jobs/{id}")).await;
            (a.status == 200 && a.body["runs"][0]["outcome"] == "done").then_some(a.body)
        },
    )
    .await;
    let runs = body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{body}");
    let run = &runs[0];
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["worker_id"], worker.as_str());
    assert_eq!(run["sandbox_id"], sandbox.as_str());
    assert!(run["duration_ms"].as_f64().unwrap() > 0.0, "{run}");
    assert!(run["error_kind"].is_null(), "{run}");
    let steps: Vec<(&str, &str, &str)> = run["git_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["command"].as_str().unwrap(),
                s["phase"].as_str().unwrap(),
                s["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps[0], ("add", "op", "ok"), "{steps:?}");
    assert_eq!(steps[1], ("commit", "op", "ok"), "{steps:?}");
    assert_eq!(
        steps.last(),
        Some(&("push", "push_group", "ok")),
        "{steps:?}"
    );
    // The record itself is the one the job always had.
    assert_eq!(
        (body["job_id"].as_str(), body["worker"].as_str()),
        (Some(id.as_str()), Some(worker.as_str()))
    );

    // The document says so.
    let doc = w.send(w.http.get(w.gw.url("/openapi.json"))).await;
    let schema = &doc.body["paths"]["/v1/jobs/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let name = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    let detail = &doc.body["components"]["schemas"][name];
    assert!(detail.to_string().contains("RunRow"), "{detail}");
    let step = &doc.body["components"]["schemas"]["GitStep"];
    assert_eq!(
        step["properties"]["command"]["$ref"], "#/components/schemas/GitCommand",
        "{step}"
    );
}
