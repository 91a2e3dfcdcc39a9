//! The repository measured: testkit's generated repository (3,000 files, 2,000 commits),
//! cached under the workspace's `target/` so reruns skip building it, and served through
//! disposable `clone_bare` copies so nothing ever pushes to the cache.
//!
//! The testkit's fixture functions are synchronous and panic on failure: here they run on
//! the blocking pool and a panic becomes an error.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use gitfleet_testkit::fixtures;

pub const FILES: usize = 3000;
pub const COMMITS: usize = 2000;
const NAME: &str = "bench-3000x2000.git";

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`, plus `git-bench/`.
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("git-bench")
}

async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("{what} panicked: {e}"))?
        .with_context(|| what.to_string())
}

/// The cached generated repository (built on the first run, about 10 s).
pub async fn generated() -> anyhow::Result<PathBuf> {
    let dir = cache_dir();
    blocking("building the generated repository", move || {
        Ok(fixtures::generated_repo(&dir, NAME, FILES, COMMITS))
    })
    .await
}

/// A bare copy `<root>/<name>` of `src` (objects hard-linked), to serve and push to.
pub async fn serve_copy(src: &Path, root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let (src, root, name) = (src.to_path_buf(), root.to_path_buf(), name.to_string());
    blocking("copying the repository", move || {
        Ok(fixtures::clone_bare(&src, &root, &name))
    })
    .await
}

/// `git <args>` in `dir` with the testkit's clean environment; stdout, trimmed.
pub async fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let dir = dir.to_path_buf();
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    blocking("git", move || fixtures::git(&dir, &args)).await
}

/// `git describe --always --dirty` of the workspace this binary was built from, or
/// `unknown`.
pub async fn workspace_commit() -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    git(&workspace, &["describe", "--always", "--dirty"])
        .await
        .unwrap_or_else(|_| "unknown".into())
}

/// What the table's header says about the repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepoInfo {
    pub files: usize,
    pub commits: usize,
    /// Size of its packs.
    pub pack_mib: f64,
    /// Bytes of the files of one checkout.
    pub checkout_mib: f64,
}

pub async fn describe(repo: &Path) -> anyhow::Result<RepoInfo> {
    let counts = git(repo, &["count-objects", "-v"]).await?;
    let pack_kib: f64 = counts
        .lines()
        .find_map(|l| l.strip_prefix("size-pack: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let tree = git(repo, &["ls-tree", "-r", "-l", "refs/heads/main"]).await?;
    let bytes: u64 = tree
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .sum();
    let commits = git(repo, &["rev-list", "--count", "refs/heads/main"]).await?;
    Ok(RepoInfo {
        files: tree.lines().count(),
        commits: commits.trim().parse().unwrap_or(0),
        pack_mib: pack_kib / 1024.0,
        checkout_mib: bytes as f64 / (1024.0 * 1024.0),
    })
}

/// Paths of files on `main`, in tree order.
pub async fn paths(repo: &Path) -> anyhow::Result<Vec<String>> {
    let tree = git(repo, &["ls-tree", "-r", "--name-only", "refs/heads/main"]).await?;
    Ok(tree.lines().map(str::to_string).collect())
}
