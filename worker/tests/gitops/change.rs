//! `change` builds its commit without a working copy. What lands must be what
//! clone → write_files → push makes of the same files: same tree (modes kept, the branch's
//! `.gitattributes` applied, deletions), same message, one commit on the branch.

use std::os::unix::fs::PermissionsExt;

use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use serde_json::json;

use crate::support::{git_fleet, sample_repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_lands_the_tree_a_working_copy_push_would() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    // The branch gets an executable and line-ending rules.
    let author = fleet.tmp().join("author");
    git(
        fleet.tmp(),
        [
            "clone",
            "--quiet",
            bare.to_str().unwrap(),
            author.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(author.join("bin")).unwrap();
    std::fs::write(author.join("bin/run.sh"), "#!/bin/sh\necho old\n").unwrap();
    std::fs::set_permissions(
        author.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(author.join(".gitattributes"), "*.txt text eol=lf\n").unwrap();
    git(&author, ["add", "-A"]).unwrap();
    git(&author, ["commit", "--quiet", "-m", "tooling"]).unwrap();
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    let files = json!([
        {"path": "bin/run.sh", "content": "#!/bin/sh\necho new\n"},
        {"path": "notes/crlf.txt", "content": "one\r\ntwo\r\n"},
        {"path": "docs/guide.md", "delete": true},
        {"path": "never/there.md", "delete": true},
    ]);
    let message = "Change things  \n\n\nwith a body\n";

    // The working-copy way, onto branch `by-sandbox`.
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "w", "task_id": "t"}),
        )
        .await;
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": c["sandbox_id"], "files": files}),
        )
        .await;
    fleet
        .ok(
            "push",
            json!({"sandbox_id": c["sandbox_id"], "message": message, "target_branch": "by-sandbox"}),
        )
        .await;

    // The change way, onto its agent branch.
    let ch = fleet
        .ok(
            "change",
            json!({"repo_url": url, "agent_id": "d", "task_id": "t", "files": files, "message": message}),
        )
        .await;
    assert_eq!(ch["branch"], "agent-d-t");
    let sha = ch["commit_sha"].as_str().unwrap();
    assert_eq!(git(&bare, ["rev-parse", "agent-d-t"]).unwrap(), sha);

    let tree = |rev: &str| git(&bare, ["rev-parse", &format!("{rev}^{{tree}}")]).unwrap();
    assert_eq!(
        tree("agent-d-t"),
        tree("by-sandbox"),
        "the same tree both ways:\n{}\n{}",
        git(&bare, ["ls-tree", "-r", "agent-d-t"]).unwrap(),
        git(&bare, ["ls-tree", "-r", "by-sandbox"]).unwrap()
    );
    let listing = git(&bare, ["ls-tree", "-r", "agent-d-t"]).unwrap();
    assert!(
        listing.contains("100755 blob"),
        "the executable stays one: {listing}"
    );
    assert!(!listing.contains("docs/guide.md"), "{listing}");
    assert_eq!(
        git(&bare, ["cat-file", "-p", "agent-d-t:notes/crlf.txt"]).unwrap(),
        "one\ntwo",
        "the branch's .gitattributes applied"
    );
    let body = |rev: &str| git(&bare, ["log", "-1", "--format=%B", rev]).unwrap();
    let strip = |b: String| {
        b.lines()
            .filter(|l| !l.starts_with("Gitfleet-Job:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(body("agent-d-t")), strip(body("by-sandbox")));
    assert_eq!(
        fixtures::commit_count(&bare, "agent-d-t"),
        fixtures::commit_count(&bare, "main") + 1
    );

    // Nothing to change: refused, nothing pushed.
    let same = fleet
        .run(
            "change",
            json!({"repo_url": url, "agent_id": "d", "task_id": "u",
                   "files": [{"path": "README.md", "content": "# sample\n"}], "message": "noop"}),
        )
        .await;
    let e = same.error.expect("refused");
    assert_eq!(e.kind, gitfleet_client::ErrorKind::InvalidInput);
    assert!(e.message.contains("nothing to commit"), "{e:?}");
    assert!(git(&bare, ["rev-parse", "--verify", "--quiet", "agent-d-u"]).is_err());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_commits_each_quoted_path_with_the_content_the_job_gave_and_nothing_else() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    // A file outside the job's scratch directory, and a job path that git's C-unquoting
    // of `--stdin-paths` lines would read as that file's absolute path.
    let secret = fleet.tmp().join("secret.txt");
    std::fs::write(&secret, "not the job's\n").unwrap();
    let outside = format!("\"{}\"", secret.display());
    let given = [
        ("\"quoted.txt", "starts with a quote\n"),
        ("a\"b", "a quote inside\n"),
        ("plain.txt", "plain\n"),
        ("\"plain.txt\"", "the quoted one\n"),
        (outside.as_str(), "the job's own\n"),
    ];
    let files: Vec<_> = given
        .iter()
        .map(|(path, content)| json!({"path": path, "content": content}))
        .collect();
    let ch = fleet
        .ok(
            "change",
            json!({"repo_url": url, "agent_id": "q", "task_id": "t", "files": files,
                   "message": "quotes"}),
        )
        .await;
    let sha = ch["commit_sha"].as_str().unwrap();
    assert_eq!(git(&bare, ["rev-parse", "agent-q-t"]).unwrap(), sha);
    for (path, content) in given {
        assert_eq!(
            git(&bare, ["show", &format!("{sha}:{path}")]).unwrap(),
            content.trim_end(),
            "{path}"
        );
    }
    // Nothing but the branch's files and the job's: no blob came from elsewhere.
    let listed = git(&bare, ["ls-tree", "-r", "-z", "--name-only", sha]).unwrap();
    let mut names: Vec<&str> = listed.split('\0').filter(|n| !n.is_empty()).collect();
    names.sort_unstable();
    let mut want: Vec<&str> = given.iter().map(|(p, _)| *p).collect();
    want.extend(["README.md", "docs/guide.md", "src/lib.rs"]);
    want.sort_unstable();
    assert_eq!(names, want);
    fleet.shutdown().await;
}

/// A worker that stops while a `change` runs gives the job back (`give_back.lua`: the run
/// does not count as an attempt). If its push had landed before the cut, the next run is
/// attempt 1 again, and must still find its commit by the trailer instead of committing
/// anew: onto the branch it starts from, that fails "nothing to commit" (the files are
/// there already) although the job's commit is on the remote. Here the cut is made exactly
/// there: the job's first run landed, then the job is given back as a stopping worker gives
/// back what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_given_back_after_its_push_landed_is_answered_with_that_commit_once() {
    let mut fleet = git_fleet().workers(1).start().await;
    let bare = sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let args = json!({"repo_url": url, "agent_id": "g", "task_id": "b",
                      "files": [{"path": "landed.txt", "content": "once\n"}],
                      "message": "Land once", "target_branch": "main"});
    let first = fleet
        .submit("change", args, &Default::default())
        .await
        .job_id;
    let queue = fleet.queue().clone();
    let done = queue
        .wait(&first, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the job's record");
    let landed = done.result.expect("a result")["commit_sha"]
        .as_str()
        .unwrap()
        .to_string();

    // The run, as a worker that is stopping sees it: still running, held by that worker.
    let ghost = "stopping-01J00000000000000000000000";
    let mut conn = fleet.test_queue().redis().await;
    let _: () = redis::cmd("HSET")
        .arg(queue.keys().job(&first))
        .arg("status")
        .arg("running")
        .arg("worker")
        .arg(ghost)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(queue.keys().held(ghost))
        .arg(&first)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        queue
            .give_back(ghost, std::slice::from_ref(&first))
            .await
            .unwrap(),
        1
    );

    // The job's record still holds the first run's result: wait for the second run's end.
    let first_started = done.started_at;
    let again = gitfleet_testkit::eventually(
        "the given-back job ran again to its end",
        std::time::Duration::from_secs(60),
        async || {
            let r = queue.job(&first).await.unwrap()?;
            (r.status.is_final() && r.started_at > first_started).then_some(r)
        },
    )
    .await;
    assert_eq!(again.error, None, "{again:?}");
    assert_eq!(
        again.attempts, 1,
        "a given-back run is not an attempt: {again:?}"
    );
    assert_eq!(
        again.given_back, 1,
        "the record says it was given back: {again:?}"
    );
    assert_eq!(
        again.result.as_ref().unwrap()["commit_sha"],
        landed.as_str(),
        "answered with the commit that landed: {again:?}"
    );
    let trailer = format!("Gitfleet-Job: {first}");
    let carrying = git(&bare, ["log", "--format=%H", "--grep", &trailer, "main"]).unwrap();
    assert_eq!(
        carrying.lines().collect::<Vec<_>>(),
        [landed.as_str()],
        "exactly one commit carries the job's trailer"
    );
    fleet.shutdown().await;
}
