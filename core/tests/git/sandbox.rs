//! Sandboxes made from the worker's template, the template's rebuild, and mirrors refreshed
//! all at once: a `SandboxManager` driven directly, against a `git daemon` on loopback
//! serving repositories that the tests change behind the worker's back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gitfleet_contract::rules::repo_url;
use gitfleet_core::git::{Git, GitConfig, RunOptions};
use gitfleet_core::sandbox::{CloneRequest, SandboxConfig, SandboxManager};
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};
use tempfile::TempDir;

/// A worker's sandboxes under a temp dir, and a daemon serving `remotes/`.
struct Setup {
    tmp: TempDir,
    daemon: GitDaemon,
    manager: Arc<SandboxManager>,
}

impl Setup {
    async fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let remotes = tmp.path().join("remotes");
        std::fs::create_dir_all(&remotes).unwrap();
        let daemon = GitDaemon::start(&remotes).expect("git daemon");
        let root = tmp.path().join("worker");
        let mut git_config = GitConfig::new(root.join("home"));
        git_config.timeout = Duration::from_secs(60);
        git_config.egress = gitfleet_testkit::test_egress();
        let git = Git::new(git_config).await.expect("git runs");
        let manager = SandboxManager::new("w1", git, SandboxConfig::new(&root))
            .await
            .expect("sandboxes");
        Self {
            tmp,
            daemon,
            manager,
        }
    }

    /// A bare repository served by the daemon, with one commit on `main`.
    fn remote(&self, name: &str) -> PathBuf {
        fixtures::bare_repo(
            &self.tmp.path().join("remotes"),
            name,
            &[
                ("README.md", "# sample\n"),
                ("src/lib.rs", "pub fn f() {}\n"),
            ],
        )
    }

    fn request(&self, repo: &str, task: &str) -> CloneRequest {
        CloneRequest {
            sandbox_id: None,
            org: None,
            agent_id: "a".into(),
            repo: repo_url("repo_url", &self.daemon.url(repo), false).unwrap(),
            branch: "main".into(),
            agent_branch: format!("agent-a-{task}"),
            shallow: false,
            sparse_paths: Vec::new(),
        }
    }

    fn template_root(&self) -> PathBuf {
        self.tmp.path().join("worker/template")
    }
}

/// Commits a change to `main` of the bare repository `bare` from a clone beside it;
/// returns the new commit.
fn push_a_commit(bare: &Path, file: &str) -> String {
    let author = bare.with_extension(format!("author-{}", ulid::Ulid::new()));
    let (b, a) = (bare.to_str().unwrap(), author.to_str().unwrap());
    git(bare.parent().unwrap(), ["clone", "--quiet", b, a]).unwrap();
    std::fs::write(author.join(file), format!("{file}\n")).unwrap();
    git(&author, ["add", "--", file]).unwrap();
    git(&author, ["commit", "--quiet", "-m", file]).unwrap();
    git(&author, ["push", "--quiet", "origin", "HEAD:main"]).unwrap();
    main_of(bare)
}

fn main_of(repo: &Path) -> String {
    git(repo, ["rev-parse", "refs/heads/main"])
        .unwrap()
        .trim()
        .to_string()
}

/// `git config --get` in a working tree, the way git itself reads it (all files).
fn config_of(work: &Path, key: &str) -> String {
    git(work, ["config", "--get", key])
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sandbox_is_made_from_the_current_template() {
    let s = Setup::new().await;
    s.remote("repo.git");
    let template = s.manager.templates().current();
    assert_eq!(
        std::fs::read_link(s.template_root().join("current")).unwrap(),
        PathBuf::from(template.id()),
        "`current` points at the version in use"
    );

    let cloned = s
        .manager
        .clone_repo(&s.request("repo.git", "t1"))
        .await
        .unwrap();
    let work = cloned.sandbox.work();
    assert_eq!(cloned.sandbox.template_id(), template.id());
    // The template's config, in the sandbox's own .git/config.
    assert_eq!(config_of(&work, "core.untrackedCache"), "false");
    assert_eq!(config_of(&work, "core.hooksPath"), "/dev/null");
    assert_eq!(config_of(&work, "index.version"), "4");
    let own = std::fs::read_to_string(work.join(".git/config")).unwrap();
    assert!(own.contains(template.id()), "{own}");
    // Nothing from git's default template: no sample hooks, no description.
    assert!(!work.join(".git/hooks").exists());
    assert!(!work.join(".git/description").exists());
    // The index is the template's version 4.
    let index = std::fs::read(work.join(".git/index")).unwrap();
    assert_eq!(&index[..8], b"DIRC\0\0\0\x04");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_leaves_sandboxes_in_use_working_and_removes_the_old_template_once_unused() {
    let s = Setup::new().await;
    let bare = s.remote("repo.git");
    let old = s.manager.templates().current();
    let old_dir = old.dir().to_path_buf();
    drop(old);

    // One sandbox in use, one released copy waiting in the cache.
    let in_use = s
        .manager
        .clone_repo(&s.request("repo.git", "busy"))
        .await
        .unwrap();
    let released = s
        .manager
        .clone_repo(&s.request("repo.git", "done"))
        .await
        .unwrap();
    assert!(s.manager.release(&released.sandbox.id, None).await.unwrap());
    drop(released);

    let rebuilt = s.manager.rebuild_template().await.unwrap();
    assert_eq!(
        rebuilt.copies_removed, 1,
        "the idle copy of the old template"
    );
    assert_eq!(
        rebuilt.versions_removed, 0,
        "a sandbox still uses the old one"
    );
    assert_eq!(s.manager.templates().current().id(), rebuilt.template_id);
    assert_eq!(
        std::fs::read_link(s.template_root().join("current")).unwrap(),
        PathBuf::from(&rebuilt.template_id)
    );
    assert!(old_dir.join("git/config").is_file(), "kept while in use");
    assert_eq!(s.manager.templates().versions().len(), 2);

    // The sandbox in use carries on: write, commit, fetch a change from the remote.
    let sandbox = &in_use.sandbox;
    std::fs::write(sandbox.work().join("notes.txt"), "still here\n").unwrap();
    let run = |args: &'static [&'static str]| {
        let manager = s.manager.clone();
        let sandbox = sandbox.clone();
        async move {
            manager
                .git_in(&sandbox, args, RunOptions::default())
                .await
                .unwrap_or_else(|e| panic!("git {args:?}: {e}"))
        }
    };
    run(&["add", "--", "notes.txt"]).await;
    run(&["commit", "--quiet", "-m", "notes"]).await;
    let moved = push_a_commit(&bare, "later.txt");
    s.manager.fetch(sandbox, "main").await.unwrap();
    let tracking = run(&["rev-parse", "origin/main"]).await.stdout_str();
    assert_eq!(tracking.trim(), moved);
    let status = run(&["status", "--porcelain=v2", "--branch"])
        .await
        .stdout_str();
    assert!(status.contains("# branch.ab +1 -1"), "{status}");

    // A new sandbox is made from the new template, fresh (the old copy is gone).
    let new = s
        .manager
        .clone_repo(&s.request("repo.git", "new"))
        .await
        .unwrap();
    assert!(!new.cache_hit);
    assert_eq!(new.sandbox.template_id(), rebuilt.template_id);
    assert_eq!(new.head_sha, moved);
    assert!(
        std::fs::read_to_string(new.sandbox.work().join(".git/config"))
            .unwrap()
            .contains(&rebuilt.template_id)
    );

    // Released, the old-template sandbox is not kept, and its template goes with it.
    let id = in_use.sandbox.id.clone();
    drop(in_use);
    assert!(!s.manager.release(&id, None).await.unwrap());
    assert!(!old_dir.exists(), "the old template is removed once unused");
    assert_eq!(
        s.manager.templates().versions(),
        vec![rebuilt.template_id.clone()]
    );
    // The new template's sandbox is kept as usual.
    assert!(s.manager.release(&new.sandbox.id, None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_all_fetches_every_mirror_the_worker_has() {
    let s = Setup::new().await;
    let (one, two) = (s.remote("one.git"), s.remote("two.git"));
    for repo in ["one.git", "two.git"] {
        let c = s
            .manager
            .clone_repo(&s.request(repo, repo.trim_end_matches(".git")))
            .await
            .unwrap();
        s.manager.release(&c.sandbox.id, None).await.unwrap();
    }
    let new_one = push_a_commit(&one, "a.txt");
    let new_two = push_a_commit(&two, "b.txt");

    let done = s.manager.mirrors().refresh_all().await;
    assert_eq!(done.refreshed, 2);
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    for (repo, want) in [("one.git", &new_one), ("two.git", &new_two)] {
        let mirror = s
            .manager
            .mirrors()
            .path(&repo_url("r", &s.daemon.url(repo), false).unwrap());
        assert_eq!(&main_of(&mirror), want, "{repo}'s mirror");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycled_copy_is_at_the_branch_as_the_remote_has_it_when_the_clone_asks() {
    let s = Setup::new().await;
    let bare = s.remote("repo.git");
    let first = s
        .manager
        .clone_repo(&s.request("repo.git", "first"))
        .await
        .unwrap();
    let work = first.sandbox.work();
    assert!(s.manager.release(&first.sandbox.id, None).await.unwrap());

    // The remote moves while the copy waits; the next clone must see the move.
    let moved = push_a_commit(&bare, "moved.txt");
    let second = s
        .manager
        .clone_repo(&s.request("repo.git", "second"))
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.sandbox.work(), work);
    assert_eq!(second.head_sha, moved);
    let head = git(&work, ["rev-parse", "HEAD", "origin/main"]).unwrap();
    assert_eq!(head, format!("{moved}\n{moved}"));
    assert_eq!(
        git(
            &work,
            ["rev-parse", "--abbrev-ref", "agent-a-second@{upstream}"]
        )
        .unwrap()
        .trim(),
        "origin/main"
    );
    assert!(work.join("moved.txt").is_file());

    // And once more with nothing moved: the same commit, no fetch needed.
    assert!(s.manager.release(&second.sandbox.id, None).await.unwrap());
    let third = s
        .manager
        .clone_repo(&s.request("repo.git", "third"))
        .await
        .unwrap();
    assert!(third.cache_hit);
    assert_eq!(third.head_sha, moved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_after_written_files_only_leaves_what_the_next_checkout_undoes() {
    let s = Setup::new().await;
    s.remote("repo.git");
    let first = s
        .manager
        .clone_repo(&s.request("repo.git", "first"))
        .await
        .unwrap();
    let work = first.sandbox.work();
    // What `write_files` does: record the paths, then write.
    first
        .sandbox
        .touched(["README.md", "new/deep/file.txt", "src/extra.rs"]);
    std::fs::write(work.join("README.md"), "scribbled\n").unwrap();
    std::fs::create_dir_all(work.join("new/deep")).unwrap();
    std::fs::write(work.join("new/deep/file.txt"), "new\n").unwrap();
    std::fs::write(work.join("src/extra.rs"), "// extra\n").unwrap();
    assert!(s.manager.release(&first.sandbox.id, None).await.unwrap());
    assert!(
        !work.join("new").exists(),
        "new directories go with their files"
    );
    assert!(!work.join("src/extra.rs").exists());
    assert!(work.join("src/lib.rs").is_file());

    let second = s
        .manager
        .clone_repo(&s.request("repo.git", "second"))
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# sample\n"
    );
    assert_eq!(git(&work, ["status", "--porcelain", "-uall"]).unwrap(), "");
}

/// A worker without Postgres evicts by its own use (`maintain_once` with local eviction,
/// as its maintenance loop runs it): its ten most used repositories are never evicted, a
/// copy of any other is kept while its repository is hot and goes once it has been idle
/// for over an hour. A worker that keeps the record leaves the same copies to the
/// scheduler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_record_evicts_by_its_own_use() {
    let s = Setup::new().await;
    // r0..r9 are used twice (a clone, then a recycle of its copy), r10 once: this worker's
    // ten most used repositories are r0..r9. Each ends with one released copy.
    let mut copies = Vec::new();
    for i in 0..11 {
        let repo = format!("r{i}.git");
        s.remote(&repo);
        let uses = if i < 10 { 2 } else { 1 };
        for n in 0..uses {
            let cloned = s
                .manager
                .clone_repo(&s.request(&repo, &format!("t{n}")))
                .await
                .unwrap();
            assert_eq!(cloned.cache_hit, n == 1, "{repo} use {n}");
            let dir = cloned.sandbox.work().parent().unwrap().to_path_buf();
            let id = cloned.sandbox.id.clone();
            drop(cloned);
            assert!(s.manager.release(&id, None).await.unwrap(), "{repo} kept");
            if n + 1 == uses {
                copies.push(dir);
            }
        }
    }
    let kept = |copies: &[PathBuf]| copies.iter().filter(|d| d.exists()).count();
    assert_eq!(kept(&copies), 11);

    // Now: r10 is hot (used a moment ago), its copy kept; the first round computes the top.
    assert_eq!(
        s.manager
            .maintain_once(std::time::Instant::now(), 0, true)
            .await,
        0
    );
    assert_eq!(kept(&copies), 11);

    // Two hours on, every repository has been idle for over an hour. With the record, the
    // worker evicts nothing itself; without it, it evicts r10's copy and keeps its top ten.
    let later = std::time::Instant::now() + Duration::from_secs(2 * 3600);
    assert_eq!(s.manager.maintain_once(later, 1, false).await, 0);
    assert_eq!(kept(&copies), 11);
    assert_eq!(s.manager.maintain_once(later, 1, true).await, 1);
    assert!(!copies[10].exists(), "r10's copy is gone");
    assert_eq!(kept(&copies[..10]), 10, "the top ten are kept");

    let again = |repo: &'static str| {
        let s = &s;
        async move {
            s.manager
                .clone_repo(&s.request(repo, "again"))
                .await
                .unwrap()
                .cache_hit
        }
    };
    assert!(!again("r10.git").await, "r10 clones afresh");
    assert!(again("r0.git").await, "r0 recycles its copy");
}
