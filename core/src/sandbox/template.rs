//! The template new sandboxes are made from: a versioned directory under the worker's root,
//! `template/<ulid>/`, whose `git/` is the git template directory every sandbox clone is
//! made with (`git clone --template`): the hardened and speed config each sandbox's
//! `.git/config` starts from, and no hooks. `template/current` is a symlink to the version
//! in use; a rebuild writes a new version beside it and switches the link with one rename,
//! so a clone sees either the old version or the new one, whole.
//!
//! A version is held (an `Arc`) by every clone in progress, live sandbox and released copy
//! made from it; [`Templates::prune`] removes a version only when nothing holds it any more,
//! so a rebuild never disturbs a sandbox in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gitfleet_contract::JobError;

/// Bumped whenever [`GIT_CONFIG`] changes meaning, so a version's config says which
/// generation of settings it has.
const GENERATION: u32 = 1;

/// The config every sandbox's `.git/config` starts from. The runner's `-c` flags already
/// enforce the safety settings on every git call (they outrank any file); they are repeated
/// here so that git run in a sandbox by anything else is no less safe. The rest is speed.
const GIT_CONFIG: &str = "\
[core]
\thooksPath = /dev/null
\tfsmonitor = false
\tsymlinks = true
\tautocrlf = false
\tprotectNTFS = true
\tprotectHFS = true
\t# Off: with it, a full `status` right after a write once missed a new file (seen under
\t# load in worker/tests/gitops/status_scope.rs). It saved about 1 ms here; scoped
\t# status (ops/status.rs) is the real saving.
\tuntrackedCache = false
\tpreloadIndex = true
[index]
\t# feature.manyFiles without its untracked-cache setting (above): a smaller index
\t# (path prefixes compressed) that is written without hashing it.
\tversion = 4
\tskipHash = true
[status]
\taheadBehind = true
[fetch]
\t# The commits a sandbox reads are the mirror's (borrowed through alternates), and the
\t# mirror writes its commit-graph on every fetch; a sandbox writing one too is wasted.
\twriteCommitGraph = false
\trecurseSubmodules = false
[submodule]
\trecurse = false
[gc]
\tauto = 0
[maintenance]
\tauto = false
[commit]
\tgpgSign = false
[credential]
\thelper =
";

/// One version of the template.
#[derive(Debug)]
pub struct Template {
    id: String,
    dir: PathBuf,
}

impl Template {
    pub(crate) fn new(id: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            id: id.into(),
            dir: dir.into(),
        }
    }

    /// The version's id (a ulid: later versions sort after earlier ones).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `template/<id>/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The git template directory, for `git clone --template`.
    pub fn git_dir(&self) -> PathBuf {
        self.dir.join("git")
    }
}

/// The template versions of one worker.
#[derive(Debug)]
pub struct Templates {
    /// `<sandbox root>/template`.
    root: PathBuf,
    current: Mutex<Arc<Template>>,
    /// Every version on disk, the current one included.
    versions: Mutex<Vec<Arc<Template>>>,
    /// One rebuild at a time, so the link on disk and [`Templates::current`] agree.
    rebuilding: tokio::sync::Mutex<()>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> JobError {
    JobError::internal(format!("template: cannot {what} {}: {e}", path.display()))
}

impl Templates {
    /// Uses the version `root/current` points to, or builds the first one. Versions on disk
    /// that are not current are removed: nothing of this process can hold them yet.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, JobError> {
        let root = root.into();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| io_error("create", &root, e))?;
        let existing = match tokio::fs::read_link(root.join("current")).await {
            Ok(target) => target
                .to_str()
                .filter(|id| ulid::Ulid::from_string(id).is_ok())
                .map(str::to_string),
            Err(_) => None,
        };
        let current = match existing {
            Some(id)
                if tokio::fs::try_exists(root.join(&id).join("git/config"))
                    .await
                    .unwrap_or(false) =>
            {
                Arc::new(Template::new(&id, root.join(&id)))
            }
            _ => Arc::new(build(&root).await?),
        };
        if let Err(e) = switch(&root, current.id()).await {
            let _ = tokio::fs::remove_dir_all(current.dir()).await;
            return Err(e);
        }
        let templates = Self {
            current: Mutex::new(current.clone()),
            versions: Mutex::new(vec![current]),
            rebuilding: tokio::sync::Mutex::new(()),
            root,
        };
        templates.remove_strays().await;
        Ok(templates)
    }

    /// The version new sandboxes are made from now. Holding it keeps it on disk.
    pub fn current(&self) -> Arc<Template> {
        self.current.lock().expect("not poisoned").clone()
    }

    /// Builds a new version and makes it current (one atomic rename of `current`). Older
    /// versions stay until [`Templates::prune`] finds nothing holds them (sandboxes made from
    /// one keep it until they are gone): the caller prunes once it has let go of what it
    /// holds, so one prune counts every version the rebuild freed. Returns the new version.
    pub async fn rebuild(&self) -> Result<Arc<Template>, JobError> {
        let _one = self.rebuilding.lock().await;
        let new = Arc::new(build(&self.root).await?);
        if let Err(e) = switch(&self.root, new.id()).await {
            let _ = tokio::fs::remove_dir_all(new.dir()).await;
            return Err(e);
        }
        // Listed before it becomes current, so `prune` always sees every version; once an
        // old version is no longer current, `current()` can never hand it out again.
        self.versions
            .lock()
            .expect("not poisoned")
            .push(new.clone());
        *self.current.lock().expect("not poisoned") = new.clone();
        tracing::info!(template = %new.id(), "sandbox template rebuilt");
        Ok(new)
    }

    /// Removes every version that is not current and that no clone, sandbox or released
    /// copy holds; returns how many went.
    pub async fn prune(&self) -> usize {
        let unused: Vec<Arc<Template>> = {
            let current = self.current();
            let mut versions = self.versions.lock().expect("not poisoned");
            // Held only by this list: nothing can take it again (it is not current).
            let (unused, kept) = versions
                .drain(..)
                .partition(|v| !Arc::ptr_eq(v, &current) && Arc::strong_count(v) == 1);
            *versions = kept;
            unused
        };
        for version in &unused {
            if let Err(e) = tokio::fs::remove_dir_all(version.dir()).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, template = %version.id(), "could not remove an old template");
            }
        }
        unused.len()
    }

    /// The ids of the versions on disk (current included), oldest first.
    pub fn versions(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .versions
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|v| v.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Removes what an earlier process left under the root: versions other than the
    /// current one, half-built versions and stale links.
    async fn remove_strays(&self) {
        let current = self.current();
        let Ok(mut entries) = tokio::fs::read_dir(&self.root).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "current" || name == current.id() {
                continue;
            }
            let path = entry.path();
            let removed = match entry.file_type().await {
                Ok(t) if t.is_dir() => tokio::fs::remove_dir_all(&path).await,
                _ => tokio::fs::remove_file(&path).await,
            };
            if let Err(e) = removed {
                tracing::warn!(error = %e, path = %path.display(), "could not remove a stray template entry");
            }
        }
    }
}

/// Writes a new version under `root`: built in a temporary directory, then renamed into
/// place, so `root/<id>` is always whole.
async fn build(root: &Path) -> Result<Template, JobError> {
    let id = ulid::Ulid::new().to_string();
    let tmp = root.join(format!("{id}.tmp"));
    let written = async {
        let git = tmp.join("git");
        // `info/exclude` empty, no `hooks/`, no `description`: only what is listed here.
        tokio::fs::create_dir_all(git.join("info"))
            .await
            .map_err(|e| io_error("create", &git, e))?;
        let header = format!(
            "# gitfleet sandbox template {id} (generation {GENERATION}), written by\n\
             # core/src/sandbox/template.rs; every sandbox's .git/config starts as a copy.\n"
        );
        let config = git.join("config");
        tokio::fs::write(&config, format!("{header}{GIT_CONFIG}"))
            .await
            .map_err(|e| io_error("write", &config, e))?;
        let exclude = git.join("info/exclude");
        tokio::fs::write(&exclude, "")
            .await
            .map_err(|e| io_error("write", &exclude, e))?;
        let dir = root.join(&id);
        tokio::fs::rename(&tmp, &dir)
            .await
            .map_err(|e| io_error("move into place", &dir, e))?;
        Ok(Template::new(&id, dir))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
    }
    written
}

/// Points `root/current` at version `id`: a new relative symlink renamed over the old one
/// (rename is atomic, so readers see the old link or the new one).
async fn switch(root: &Path, id: &str) -> Result<(), JobError> {
    let link = root.join("current");
    let tmp = root.join(format!("current.tmp-{}", ulid::Ulid::new()));
    tokio::fs::symlink(id, &tmp)
        .await
        .map_err(|e| io_error("create", &tmp, e))?;
    if let Err(e) = tokio::fs::rename(&tmp, &link).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_error("switch", &link, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_config_is_valid_git_config() {
        let parsed = std::process::Command::new("git")
            .args(["config", "--file", "-", "--list"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(GIT_CONFIG.as_bytes())?;
                child.wait_with_output()
            })
            .expect("run git config");
        assert!(parsed.status.success());
        let listed = String::from_utf8(parsed.stdout).unwrap();
        for want in [
            "core.hookspath=/dev/null",
            "core.fsmonitor=false",
            "core.untrackedcache=false",
            "index.version=4",
        ] {
            assert!(listed.contains(want), "{want} in {listed}");
        }
    }

    #[tokio::test]
    async fn a_rebuild_switches_current_and_keeps_a_held_version_until_it_is_let_go() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("template");
        let templates = Templates::open(&root).await.unwrap();
        let first = templates.current();
        assert!(first.git_dir().join("config").is_file());
        assert!(!first.git_dir().join("hooks").exists());
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            PathBuf::from(first.id())
        );

        let second = templates.rebuild().await.unwrap();
        assert_ne!(first.id(), second.id());
        assert_eq!(templates.current().id(), second.id());
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            PathBuf::from(second.id())
        );
        // `first` is still held (as a sandbox would hold it): kept.
        assert!(first.git_dir().join("config").is_file());
        assert_eq!(templates.versions().len(), 2);

        let first_dir = first.dir().to_path_buf();
        drop(first);
        assert_eq!(templates.prune().await, 1);
        assert!(!first_dir.exists());
        assert_eq!(templates.versions(), vec![second.id().to_string()]);

        // A new process over the same root finds the current version and keeps it.
        drop(templates);
        let reopened = Templates::open(&root).await.unwrap();
        assert_eq!(reopened.current().id(), second.id());
    }
}
