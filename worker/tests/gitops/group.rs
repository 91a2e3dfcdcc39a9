//! Group commit: pushes one worker has for one branch go out together. Each agent's commit
//! lands once, with its message and trailer; a conflicting agent fails alone with the path;
//! each sandbox ends up on its landed commit and can push again.

use std::collections::HashMap;
use std::time::Duration;

use gitfleet_client::{Client, EnqueueOptions, ErrorKind, JobSpec, JobStatus};
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use serde_json::{Value, json};

use crate::support::{git_fleet, sample_repo, work_tree};

const AGENTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_one_branch_land_together_and_a_conflict_fails_alone() {
    // One worker, so every push joins the same group.
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    git(&bare, ["branch", "shared", "main"]).unwrap();
    let base = fixtures::commit_count(&bare, "shared");
    let base_sha = git(&bare, ["rev-parse", "shared"]).unwrap();
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    // Every agent starts from the same commit; agents 4 and 5 both rewrite README.md.
    let mut sandboxes = Vec::new();
    for i in 0..AGENTS {
        let c = fleet
            .ok(
                "clone",
                json!({"repo_url": url, "branch": "shared", "agent_id": format!("g{i}"), "task_id": "t"}),
            )
            .await;
        let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
        let (path, content) = if i >= 4 {
            (
                "README.md".to_string(),
                format!("# rewritten by agent {i}\n"),
            )
        } else {
            (format!("agents/{i}.txt"), format!("agent {i}\n"))
        };
        fleet
            .ok(
                "write_files",
                json!({"sandbox_id": sandbox, "files": [{"path": path, "content": content}]}),
            )
            .await;
        sandboxes.push(sandbox);
    }

    // All pushes at once.
    let mut jobs = Vec::new();
    for (i, sandbox) in sandboxes.iter().enumerate() {
        let spec = JobSpec::new(
            "push",
            json!({"sandbox_id": sandbox, "message": format!("work of agent {i}"),
                   "target_branch": "shared"}),
        );
        let job = fleet
            .client()
            .submit(&Client::route(&spec), &spec, &EnqueueOptions::default())
            .await
            .unwrap();
        jobs.push(job.job_id);
    }
    let mut records = HashMap::new();
    for (i, id) in jobs.iter().enumerate() {
        let record = fleet
            .client()
            .wait(id, Duration::from_secs(90))
            .await
            .unwrap()
            .unwrap();
        assert!(record.status.is_final(), "agent {i}: {record:?}");
        records.insert(i, record);
    }

    // Agents 0-3 landed; of 4 and 5 exactly one did, the other conflicts on README.md.
    let landed: Vec<usize> = (0..AGENTS)
        .filter(|i| records[i].status == JobStatus::Done)
        .collect();
    assert!(
        (0..4).all(|i| landed.contains(&i)),
        "{landed:?}: {records:#?}"
    );
    assert_eq!(landed.len(), 5, "{records:#?}");
    let loser = if landed.contains(&4) { 5 } else { 4 };
    let failed = &records[&loser];
    assert_eq!(failed.status, JobStatus::Dead);
    let error = failed.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error:?}");
    assert!(error.message.contains("README.md"), "{error:?}");

    // The remote: each landed agent's commit once, with its message; nothing of the loser.
    assert_eq!(fixtures::commit_count(&bare, "shared"), base + 5);
    let log = git(&bare, ["log", "--format=%B", "shared"]).unwrap();
    for &i in &landed {
        assert_eq!(
            log.matches(&format!("Gitfleet-Job: {}", jobs[i])).count(),
            1,
            "agent {i}'s commit is on the branch once"
        );
        assert!(log.contains(&format!("work of agent {i}\n")), "{log}");
    }
    assert!(!log.contains(&format!("Gitfleet-Job: {}", jobs[loser])));
    let winner = if loser == 4 { 5 } else { 4 };
    assert_eq!(
        git(&bare, ["show", "shared:README.md"]).unwrap().trim(),
        format!("# rewritten by agent {winner}")
    );
    for i in 0..4 {
        assert_eq!(
            git(&bare, ["show", &format!("shared:agents/{i}.txt")])
                .unwrap()
                .trim(),
            format!("agent {i}")
        );
    }
    // Only fast-forwards on the remote.
    for line in fixtures::reflog(&bare, "shared").iter().skip(1) {
        let mut parts = line.split(' ');
        let (old, new) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            git(&bare, ["merge-base", "--is-ancestor", old, new]).is_ok(),
            "{old} -> {new} was not a fast-forward"
        );
    }

    // Each landed sandbox sits on its landed commit, clean. They all started from the same
    // commit, so the first to land went on as it was and every later one was replayed onto
    // a branch that had moved: exactly all but one.
    let mut replayed = 0;
    for &i in &landed {
        let result: &Value = records[&i].result.as_ref().unwrap();
        let sha = result["commit_sha"].as_str().unwrap();
        let on_remote = git(&bare, ["merge-base", "--is-ancestor", sha, "shared"]);
        assert!(on_remote.is_ok(), "agent {i}'s {sha} is on the branch");
        if result["rebased"] == true {
            replayed += 1;
        }
        let s = fleet
            .ok("status", json!({"sandbox_id": sandboxes[i]}))
            .await;
        assert_eq!(s["head_sha"], sha, "agent {i}'s sandbox is on its commit");
        for list in ["staged", "modified", "untracked", "conflicted"] {
            assert_eq!(s[list], json!([]), "agent {i}: {list}");
        }
    }
    assert_eq!(replayed, landed.len() - 1, "{records:#?}");

    // The loser's sandbox is as the failed push left it (the conflict was found in the
    // mirror, so nothing in the sandbox moved): on its agent branch, on its own commit (its
    // README and its trailer, on the commit it cloned), clean.
    let loser_sandbox = &sandboxes[loser];
    let s = fleet
        .ok("status", json!({"sandbox_id": loser_sandbox}))
        .await;
    assert_eq!(s["branch"], format!("agent-g{loser}-t"), "{s}");
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "the loser: {list}: {s}");
    }
    let own = s["head_sha"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, &format!("agent-g{loser}-t"));
    assert_eq!(git(&work, ["rev-parse", "HEAD^"]).unwrap(), base_sha);
    let body = git(&work, ["log", "-1", "--format=%B", "HEAD"]).unwrap();
    assert!(
        body.contains(&format!("Gitfleet-Job: {}", jobs[loser])),
        "{body}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        format!("# rewritten by agent {loser}\n")
    );
    // Its next pull meets the winner's README: the same conflict, and it stays where it is.
    let pulled = fleet.ok("pull", json!({"sandbox_id": loser_sandbox})).await;
    assert_eq!(pulled["conflicts"], json!(["README.md"]), "{pulled}");
    assert_eq!(pulled["updated"], false, "{pulled}");
    assert_eq!(pulled["head_sha"], own.as_str(), "{pulled}");
    let s = fleet
        .ok("status", json!({"sandbox_id": loser_sandbox}))
        .await;
    assert_eq!(s["head_sha"], own.as_str(), "{s}");
    assert_eq!(s["conflicted"], json!([]), "{s}");

    // A landed sandbox pushes again: one more commit, the first not repeated.
    let again = &sandboxes[0];
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": again, "files": [{"path": "agents/0-more.txt", "content": "more\n"}]}),
        )
        .await;
    let second = fleet
        .run(
            "push",
            json!({"sandbox_id": again, "message": "more of agent 0", "target_branch": "shared"}),
        )
        .await;
    assert_eq!(second.status, JobStatus::Done, "{:?}", second.error);
    assert_eq!(fixtures::commit_count(&bare, "shared"), base + 6);
    let log = git(&bare, ["log", "--format=%B", "shared"]).unwrap();
    assert_eq!(
        log.matches(&format!("Gitfleet-Job: {}", jobs[0])).count(),
        1
    );
    assert_eq!(
        log.matches(&format!("Gitfleet-Job: {}", second.job_id))
            .count(),
        1
    );
    fleet.shutdown().await;
}
