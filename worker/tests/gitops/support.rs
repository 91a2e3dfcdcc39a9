//! What the git-op tests share on top of `gitfleet_testkit::Fleet`: the fleet they run
//! (workers with git, sandboxes under the fleet's temporary directory), a sample
//! repository, credentials for URL prefixes, and a look at a sandbox's working tree on disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_contract::{Credential, Credentials, PlainHttp, UrlPrefix};
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::{Fleet, FleetBuilder, fixtures};

/// A fleet as these tests run it (no workers unless asked for): workers with git and no
/// credentials, twenty jobs at once, quick retries.
pub fn git_fleet() -> FleetBuilder {
    Fleet::builder("gitops")
        .config(WorkerConfig {
            name_stem: "gitops".into(),
            concurrency: 20,
            retry_base: Duration::from_millis(200),
            ..Default::default()
        })
        .git()
}

/// A bare repository with a few files, served from `remotes`.
pub fn sample_repo(remotes: &Path, name: &str) -> PathBuf {
    fixtures::bare_repo(
        remotes,
        name,
        &[
            ("README.md", "# sample\n"),
            ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
            ("docs/guide.md", "guide\n"),
        ],
    )
}

/// Credentials for each URL prefix, `http://` ones allowed (as
/// `GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS=true` allows them: the test servers speak plain http).
pub fn credentials_for(prefixes: &[String], user: &str, token: &str) -> Credentials {
    let mut c = Credentials::default();
    for prefix in prefixes {
        let prefix = UrlPrefix::parse(prefix, PlainHttp::Allowed)
            .unwrap_or_else(|e| panic!("{prefix}: {e}"));
        c.insert(prefix, Credential::new(user, token));
    }
    c
}

/// The working tree of the live sandbox on `agent_branch`, found on disk: every worker's
/// sandboxes are `<tmp>/sandboxes/<worker id>/sandboxes/<dir>/work`, and a sandbox's
/// `.git/HEAD` names its agent branch. Panics unless exactly one working tree is on it.
pub fn work_tree(fleet: &Fleet, agent_branch: &str) -> PathBuf {
    let wanted = format!("ref: refs/heads/{agent_branch}");
    let mut found = Vec::new();
    let root = fleet.sandbox_root();
    for worker in std::fs::read_dir(&root)
        .expect("the sandbox root")
        .flatten()
    {
        let Ok(dirs) = std::fs::read_dir(worker.path().join("sandboxes")) else {
            continue;
        };
        for dir in dirs.flatten() {
            let work = dir.path().join("work");
            let head = std::fs::read_to_string(work.join(".git").join("HEAD")).unwrap_or_default();
            if head.trim() == wanted {
                found.push(work);
            }
        }
    }
    assert_eq!(
        found.len(),
        1,
        "one working tree on {agent_branch} under {}: {found:?}",
        root.display()
    );
    found.pop().unwrap()
}

/// The files checked out in `work` (relative paths, sorted), `.git` left out.
pub fn files_on_disk(work: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read a directory").flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if entry.file_type().expect("file type").is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under the root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(work, work, &mut out);
    out.sort();
    out
}
