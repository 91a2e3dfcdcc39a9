//! Many agents pushing to one branch at once: every commit lands, exactly once, and the
//! branch only ever moved forward (the remote's reflog shows no forced update).

use std::collections::HashMap;
use std::time::Duration;

use gitfleet_client::{EnqueueOptions, JobSpec, JobStatus};
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use serde_json::json;

use crate::support::{git_fleet, sample_repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_pushing_to_one_branch_all_land_once_and_nothing_is_forced() {
    const AGENTS: usize = 20;
    let mut fleet = git_fleet().workers(2).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    git(&bare, ["branch", "shared", "main"]).unwrap();
    let base = fixtures::commit_count(&bare, "shared");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    let mut jobs = HashMap::new();
    for i in 0..AGENTS {
        let spec = JobSpec::new(
            "change",
            json!({"repo_url": url, "agent_id": format!("agent{i}"), "task_id": "t",
                   "files": [{"path": format!("agents/{i}.txt"), "content": format!("agent {i}\n")}],
                   "message": format!("work of agent {i}"), "target_branch": "shared"}),
        );
        let job = fleet
            .client()
            .submit("jobs", &spec, &EnqueueOptions::default())
            .await
            .unwrap();
        jobs.insert(job.job_id, i);
    }
    for id in jobs.keys() {
        let record = fleet
            .client()
            .wait(id, Duration::from_secs(120))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, JobStatus::Done, "{:?}", record.error);
        assert_eq!(record.result.unwrap()["branch"], "shared");
    }

    assert_eq!(
        fixtures::commit_count(&bare, "shared"),
        base + AGENTS,
        "every commit landed"
    );
    let log = git(&bare, ["log", "--format=%B", "shared"]).unwrap();
    for (id, i) in &jobs {
        assert_eq!(
            log.matches(&format!("Gitfleet-Job: {id}")).count(),
            1,
            "agent {i}'s commit is there once"
        );
        let file = git(&bare, ["show", &format!("shared:agents/{i}.txt")]).unwrap();
        assert_eq!(file.trim(), format!("agent {i}"));
    }
    // Every update of the branch on the remote was a fast-forward.
    let reflog = fixtures::reflog(&bare, "shared");
    // Pushes from one worker to one branch go out in groups: at least one update, at most
    // one per agent.
    assert!(
        (2..=AGENTS + 1).contains(&reflog.len()),
        "created once, then between one update and one per agent: {reflog:#?}"
    );
    for line in reflog.iter().skip(1) {
        let mut parts = line.split(' ');
        let (old, new) = (parts.next().unwrap(), parts.next().unwrap());
        let ff = std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", old, new])
            .current_dir(&bare)
            .status()
            .unwrap();
        assert!(ff.success(), "{old} -> {new} was not a fast-forward");
    }
    fleet.shutdown().await;
}
