//! One sandbox: a working copy owned by this worker, the lock its ops take, and what the
//! worker knows of its tree (where it can differ from HEAD), which lets `status` and `diff`
//! ask git about the touched paths only.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gitfleet_contract::rules::RepoUrl;

use super::limits::Usage;
use super::template::Template;

/// One live sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    /// The organization that cloned it (its clone job's envelope; `None`: a job without
    /// one). Only jobs of the same organization reach it.
    pub org: Option<String>,
    /// The agent that cloned it.
    pub agent_id: String,
    /// The sandbox's directory; the working tree is `work/` in it.
    pub dir: PathBuf,
    pub repo: RepoUrl,
    /// The branch it was cloned from.
    pub branch: String,
    /// `agent-{agent_id}-{task_id}`.
    pub agent_branch: String,
    /// A `--depth 1` clone: never recycled for another clone.
    pub shallow: bool,
    /// The paths a sparse checkout keeps (all when empty).
    pub(super) sparse_paths: Vec<String>,
    /// What it holds, as its limits count it (see [`super::limits`]).
    pub(super) usage: Mutex<Usage>,
    /// The template version it was made from (held: kept on disk while the sandbox lives).
    pub(super) template: Arc<Template>,
    /// What this worker knows of the working tree (see [`TreeState`]).
    pub(super) tree: Mutex<TreeState>,
    /// One op at a time per sandbox.
    pub(super) busy: Arc<tokio::sync::Mutex<()>>,
}

/// What the worker knows of a sandbox's working tree. Only this worker writes it: files
/// through `write_files`, everything else through git run by an op ([`SandboxManager::git_in`]),
/// so it can tell `status` where to look instead of letting git `lstat` every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TreeState {
    /// Anything may differ from HEAD (git ran something that may have changed the index or
    /// the tree): `status` looks at everything.
    Unknown,
    /// The index is HEAD, nothing is unmerged, and the working tree is the index (ignored
    /// files aside) except perhaps at these paths, written or deleted since.
    Clean { touched: BTreeSet<String> },
}

/// Most touched paths a scoped `status` takes; beyond, it looks at everything.
pub(super) const MAX_SCOPED_PATHS: usize = 256;

/// Git commands that change neither the index's content nor the working tree (`status` and
/// `diff` may rewrite the index's cached stat data, which changes nothing they report).
pub(super) const READ_ONLY: &[&str] = &[
    "status",
    "diff",
    "log",
    "show",
    "rev-parse",
    "rev-list",
    "ls-files",
    "cat-file",
    "for-each-ref",
    "merge-base",
];

impl Sandbox {
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The working copy's own object store (besides the mirror, its alternate).
    pub fn objects(&self) -> PathBuf {
        self.work().join(".git").join("objects")
    }

    /// The id of the template version the sandbox was made from.
    pub fn template_id(&self) -> &str {
        self.template.id()
    }

    /// Records paths written or deleted in the working tree (call before writing). A
    /// `.gitignore` or `.gitattributes` can change how every other file is seen, so writing
    /// one makes the tree unknown.
    pub fn touched<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        let mut tree = self.tree.lock().expect("not poisoned");
        if let TreeState::Clean { touched } = &mut *tree {
            for path in paths {
                let name = path.rsplit('/').next().unwrap_or(path);
                if name == ".gitignore" || name == ".gitattributes" {
                    *tree = TreeState::Unknown;
                    return;
                }
                touched.insert(path.to_string());
            }
            if touched.len() > MAX_SCOPED_PATHS {
                *tree = TreeState::Unknown;
            }
        }
    }

    /// Forgets what is known of the working tree (something may have changed it).
    pub fn tree_unknown(&self) {
        *self.tree.lock().expect("not poisoned") = TreeState::Unknown;
    }

    /// Records that the tree is exactly HEAD (a full `status` found nothing).
    pub fn tree_clean(&self) {
        *self.tree.lock().expect("not poisoned") = TreeState::Clean {
            touched: BTreeSet::new(),
        };
    }

    /// The only paths at which the working tree or index may differ from HEAD, if that is
    /// known (`None`: it is not, look everywhere).
    pub fn status_scope(&self) -> Option<Vec<String>> {
        match &*self.tree.lock().expect("not poisoned") {
            TreeState::Unknown => None,
            TreeState::Clean { touched } => Some(touched.iter().cloned().collect()),
        }
    }

    /// What the sandbox holds, as its limits count it.
    pub fn usage(&self) -> Usage {
        *self.usage.lock().expect("not poisoned")
    }

    /// Records what the sandbox holds now (after a change that was checked against the
    /// limits).
    pub(crate) fn set_usage(&self, usage: Usage) {
        *self.usage.lock().expect("not poisoned") = usage;
    }

    pub(crate) fn update_usage(&self, change: impl FnOnce(&mut Usage)) {
        change(&mut self.usage.lock().expect("not poisoned"));
    }

    /// Waits for the sandbox to be free; ops hold the guard while they run.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.busy.lock().await
    }

    /// [`Self::lock`], as a guard that can outlive the borrow (work an op finishes in the
    /// background, after its job has answered).
    pub async fn lock_owned(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.busy.clone().lock_owned().await
    }
}
