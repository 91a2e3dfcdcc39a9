//! A hostile *repository* (as opposed to hostile job arguments, in `hostile.rs`): its
//! committed content names commands, and no op on it runs any of them.
//!
//! What a repository can carry is limited: `clone` and `fetch` transfer objects and refs,
//! never the remote's config or hooks. Everything in git that names a command to run (filter,
//! diff, textconv and merge drivers, `core.fsmonitor`, `core.sshCommand`, hooks, credential
//! helpers, `gpg.program`) is config or a hook, so it must come from the worker's own config,
//! which the runner controls (`GIT_CONFIG_NOSYSTEM`, a global config of its own, hardening
//! `-c` flags). We found no way for a remote repository by itself to make the worker run a
//! command. What is reachable, and tested here, is content that *points at* drivers and
//! commands, waiting for config or a recursion to arm it:
//! - `.gitattributes` with `filter=evil`, `diff=evil` and `merge=evil` on the files: no
//!   `filter.evil.*`/`diff.evil.*`/`merge.evil.*` exists anywhere the worker's git reads, and
//!   the `diff` op passes `--no-ext-diff --no-textconv` besides;
//! - a submodule (a gitlink plus `.gitmodules`) whose URL is `ext::sh -c touch <marker>`,
//!   with `fetchRecurseSubmodules = true`: clones never recurse, fetches do not recurse into
//!   it, and `ext::` is not an allowed protocol anyway;
//! - a `.gitmodules` with `update = !<command>`: only `git submodule update` would read it
//!   (and git refuses commands from `.gitmodules` anyway). It runs nothing, but git dies
//!   reading it ("invalid value for 'submodule.ext.update'") in `status`, `diff` and
//!   stash/autostash. `status` and `diff` pass `--ignore-submodules=all`, and `pull` uses no
//!   stash (it rebases in the mirror and moves the sandbox with `reset --keep`).
//!
//! Every op is run on that repository (clone fresh and recycled, status, diff, write_files,
//! push, pull, change, release); no marker may appear, no config the worker's git reads may
//! define a driver or the submodule, and the files go through byte for byte (no filter ran).
//! At the end, plain git run by the test with the drivers configured and recursion allowed
//! does create the markers: the traps were live, so their silence above means something.

use std::path::{Path, PathBuf};

use gitfleet_testkit::fixtures::{self, git, git_with_env};
use gitfleet_testkit::{Fleet, GitDaemon};
use serde_json::json;

use crate::support::{git_fleet, work_tree};

const ATTRIBUTES: &str =
    "*.txt filter=evil diff=evil merge=evil\n*.bin filter=evil diff=evil merge=evil -text\n";

/// The markers the traps would create, one per trap.
struct Markers {
    dir: PathBuf,
}

impl Markers {
    fn new(root: &Path) -> Self {
        let dir = root.join("markers");
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn present(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// `repo.git`: `.gitattributes` naming the `evil` drivers, files they apply to, and a
/// submodule `ext` whose URL (and, with `update_command`, whose `update = !<command>`)
/// would touch markers.
fn hostile_remote(fleet: &Fleet, markers: &Markers, update_command: bool) -> PathBuf {
    let remotes = fleet.remotes();
    let bare = fixtures::bare_repo(
        &remotes,
        "repo.git",
        &[
            ("README.md", "# hostile\n"),
            (".gitattributes", ATTRIBUTES),
            ("data.txt", "plain text\n"),
            ("blob.bin", "binary-ish\n"),
        ],
    );
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
    // ext:: URLs take `% ` for a space.
    let url = format!(
        "ext::sh -c touch% {}",
        markers.path("submodule-url").display()
    );
    let update = if update_command {
        format!(
            "\tupdate = !touch {}\n",
            markers.path("submodule-update").display()
        )
    } else {
        String::new()
    };
    std::fs::write(
        author.join(".gitmodules"),
        format!(
            "[submodule \"ext\"]\n\tpath = ext\n\turl = {url}\n{update}\tfetchRecurseSubmodules = true\n"
        ),
    )
    .unwrap();
    let head = git(&author, ["rev-parse", "HEAD"]).unwrap();
    git(
        &author,
        [
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{head},ext"),
        ],
    )
    .unwrap();
    // An empty directory, as in any clone that did not initialise the submodule; without it
    // `add -A` or `commit -a` would stage the gitlink's deletion.
    std::fs::create_dir_all(author.join("ext")).unwrap();
    git(&author, ["add", "-A"]).unwrap();
    git(&author, ["commit", "--quiet", "-m", "add a submodule"]).unwrap();
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    let tree = git(&bare, ["ls-tree", "main"]).unwrap();
    assert!(tree.contains("160000 commit"), "{tree}");
    bare
}

/// Every git config file the fleet's git processes read (global config, mirrors, sandboxes).
fn worker_config_files(fleet: &Fleet) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for worker in std::fs::read_dir(fleet.tmp().join("sandboxes"))
        .unwrap()
        .flatten()
    {
        let root = worker.path();
        files.push(root.join("home").join(".gitconfig"));
        for dir in ["mirrors", "sandboxes"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                for config in [e.path().join("config"), e.path().join("work/.git/config")] {
                    if config.exists() {
                        files.push(config);
                    }
                }
            }
        }
    }
    files
}

/// No config the worker's git reads defines a driver the attributes name, or the submodule.
fn assert_no_driver_configured(fleet: &Fleet) {
    let files = worker_config_files(fleet);
    assert!(
        files.len() >= 3,
        "global, mirror and sandbox configs: {files:?}"
    );
    for file in files {
        let keys = git(
            fleet.tmp(),
            [
                "config",
                "--file",
                file.to_str().unwrap(),
                "--name-only",
                "--list",
            ],
        )
        .unwrap();
        for key in keys.lines() {
            let key = key.to_ascii_lowercase();
            assert!(
                !["filter.", "diff.", "merge.", "submodule.ext."]
                    .iter()
                    .any(|p| key.starts_with(p)),
                "{} sets {key}",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_naming_drivers_and_a_hostile_submodule_runs_nothing() {
    let mut fleet = git_fleet().workers(1).start().await;
    let markers = Markers::new(fleet.tmp());
    let bare = hostile_remote(&fleet, &markers, false);
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    // clone (fresh): the submodule is not initialised, its directory stays empty.
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    let work = work_tree(&fleet, "agent-a-t");
    assert!(
        std::fs::read_dir(work.join("ext"))
            .unwrap()
            .next()
            .is_none(),
        "the submodule is not checked out"
    );
    assert!(!work.join(".git/modules").exists(), "nor cloned");
    assert_eq!(
        std::fs::read(work.join("data.txt")).unwrap(),
        b"plain text\n",
        "checked out as stored: no smudge filter ran"
    );

    // status, then write_files and diff with the drivers' attributes on the files.
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}: {s}");
    }
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "data.txt", "content": "plain text\nchanged by the agent\n"},
                {"path": "blob.bin", "content": "binary-ish, changed\n"},
                {"path": "new.txt", "content": "new\n"},
            ]}),
        )
        .await;
    let d = fleet.ok("diff", json!({"sandbox_id": sandbox})).await;
    let text = d["diff"].as_str().unwrap();
    assert!(text.contains("+changed by the agent"), "{d}");
    assert_eq!(d["files_changed"], 2, "{d}");
    let d = fleet
        .ok(
            "diff",
            json!({"sandbox_id": sandbox, "paths": ["data.txt"], "staged": true}),
        )
        .await;
    assert_eq!(d["files_changed"], 0, "{d}");

    // push: the content lands byte for byte (no clean filter ran), the gitlink unchanged.
    let p = fleet
        .ok(
            "push",
            json!({"sandbox_id": sandbox, "message": "agent work"}),
        )
        .await;
    assert_eq!(
        git(&bare, ["rev-parse", "agent-a-t"]).unwrap(),
        p["commit_sha"].as_str().unwrap()
    );
    assert_eq!(
        git(&bare, ["show", "agent-a-t:data.txt"]).unwrap(),
        "plain text\nchanged by the agent"
    );
    assert_eq!(git(&bare, ["show", "agent-a-t:new.txt"]).unwrap(), "new");
    assert_eq!(
        git(&bare, ["rev-parse", "agent-a-t:ext"]).unwrap(),
        git(&bare, ["rev-parse", "main:ext"]).unwrap(),
        "the gitlink is pushed as it was"
    );

    // pull after the remote moved (a rebase over files with merge=evil).
    let author = fleet.tmp().join("author");
    std::fs::write(author.join("README.md"), "# hostile\nupstream\n").unwrap();
    git(&author, ["commit", "--quiet", "-am", "upstream"]).unwrap();
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    let pl = fleet.ok("pull", json!({"sandbox_id": sandbox})).await;
    assert_eq!(pl["updated"], true, "{pl}");
    assert_eq!(pl["conflicts"], json!([]), "{pl}");

    // release, then a recycled clone (a fetch with the submodule's fetchRecurseSubmodules).
    let r = fleet.ok("release", json!({"sandbox_id": sandbox})).await;
    assert_eq!(r["cached"], true);
    let c2 = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "b", "task_id": "t"}),
        )
        .await;
    assert_eq!(c2["cache_hit"], true);
    let s = fleet
        .ok("status", json!({"sandbox_id": c2["sandbox_id"]}))
        .await;
    for list in ["staged", "modified", "untracked", "conflicted"] {
        assert_eq!(s[list], json!([]), "{list}: {s}");
    }

    // change: the whole cycle in one job.
    fleet
        .ok(
            "change",
            json!({"repo_url": url, "agent_id": "c", "task_id": "t",
                   "files": [{"path": "data.txt", "content": "from change\n"}],
                   "message": "one-shot"}),
        )
        .await;
    assert_eq!(
        git(&bare, ["show", "agent-c-t:data.txt"]).unwrap(),
        "from change"
    );

    assert_eq!(markers.present(), Vec::<String>::new(), "nothing ran");
    assert_no_driver_configured(&fleet);

    assert!(
        git(&bare, ["ls-tree", "main", "ext"])
            .unwrap()
            .starts_with("160000 commit"),
        "the submodule was there all along"
    );

    // The control: plain git, with the drivers configured and recursion allowed, does run
    // the repository's traps.
    let ctl = fleet.tmp().join("control");
    let filter = format!("touch {}; cat", markers.path("filter").display());
    let _ = git_with_env(
        fleet.tmp(),
        [
            "-c",
            "protocol.ext.allow=always",
            "-c",
            &format!("filter.evil.smudge={filter}"),
            "-c",
            "filter.evil.clean=cat",
            "clone",
            "--quiet",
            "--recurse-submodules",
            bare.to_str().unwrap(),
            ctl.to_str().unwrap(),
        ],
        [("GIT_ALLOW_PROTOCOL", "ext:file")],
    );
    std::fs::write(ctl.join("data.txt"), "changed\n").unwrap();
    let diff = format!(
        "diff.evil.command=touch {} #",
        markers.path("diff").display()
    );
    git(&ctl, ["-c", &diff, "diff"]).unwrap();
    assert_eq!(
        markers.present(),
        ["diff", "filter", "submodule-url"],
        "the traps were live"
    );
    fleet.shutdown().await;
}

/// Runs `op` and returns whether it was done (the ops that git cannot run on this
/// repository fail; what matters here is that nothing runs).
async fn attempt(fleet: &Fleet, op: &str, args: serde_json::Value) -> bool {
    fleet.run(op, args).await.status == gitfleet_client::JobStatus::Done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submodule_update_command_in_gitmodules_runs_nothing() {
    let mut fleet = git_fleet().workers(1).start().await;
    let markers = Markers::new(fleet.tmp());
    let bare = hostile_remote(&fleet, &markers, true);
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    attempt(&fleet, "status", json!({"sandbox_id": sandbox})).await;
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "data.txt", "content": "changed\n"},
            ]}),
        )
        .await;
    attempt(&fleet, "diff", json!({"sandbox_id": sandbox})).await;
    attempt(&fleet, "pull", json!({"sandbox_id": sandbox})).await;
    let pushed = attempt(
        &fleet,
        "push",
        json!({"sandbox_id": sandbox, "message": "agent work"}),
    )
    .await;
    assert!(pushed, "push does not read the submodule's update setting");
    assert_eq!(
        git(&bare, ["show", "agent-a-t:data.txt"]).unwrap(),
        "changed"
    );
    fleet.ok("release", json!({"sandbox_id": sandbox})).await;
    let c2 = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "b", "task_id": "t"}),
        )
        .await;
    assert_eq!(c2["cache_hit"], true);
    attempt(
        &fleet,
        "change",
        json!({"repo_url": url, "agent_id": "c", "task_id": "t",
               "files": [{"path": "data.txt", "content": "from change\n"}],
               "message": "one-shot"}),
    )
    .await;

    assert_eq!(markers.present(), Vec::<String>::new(), "nothing ran");
    assert_no_driver_configured(&fleet);
    fleet.shutdown().await;
}

/// A repository whose `.gitmodules` holds `update = !<command>` must not break its
/// sandboxes' `status`, `diff` and `pull`.
///
/// git dies on that value ("fatal: invalid value for 'submodule.ext.update'") whenever it
/// loads the submodule config: `status` and `diff` pass `--ignore-submodules=all`, and
/// `pull` computes its rebase in the mirror and moves the sandbox with `reset --keep`, with
/// no stash (the stash behind `rebase --autostash` had no switch to avoid it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitmodules_update_command_does_not_break_status_diff_or_pull() {
    let mut fleet = git_fleet().workers(1).start().await;
    let markers = Markers::new(fleet.tmp());
    hostile_remote(&fleet, &markers, true);
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");
    let c = fleet
        .ok(
            "clone",
            json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
        )
        .await;
    let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
    fleet
        .ok(
            "write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "data.txt", "content": "changed\n"},
            ]}),
        )
        .await;
    let s = fleet.ok("status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(s["modified"], json!(["data.txt"]), "{s}");
    let d = fleet.ok("diff", json!({"sandbox_id": sandbox})).await;
    assert_eq!(d["files_changed"], 1, "{d}");
    let author = fleet.tmp().join("author");
    std::fs::write(author.join("README.md"), "# hostile\nupstream\n").unwrap();
    git(&author, ["commit", "--quiet", "-am", "upstream"]).unwrap();
    git(&author, ["push", "--quiet", "origin", "main"]).unwrap();
    let pl = fleet.ok("pull", json!({"sandbox_id": sandbox})).await;
    assert_eq!(pl["updated"], true, "{pl}");
    assert_eq!(markers.present(), Vec::<String>::new(), "nothing ran");
    fleet.shutdown().await;
}
