//! Where sandboxes live. The `local` provider gives each sandbox a directory of its own
//! under the worker's root; a bubblewrap jail or a remote provider (E2B-style) fits behind
//! the same trait.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use gitfleet_contract::JobError;

/// Makes and removes the directories sandboxes work in.
pub trait SandboxProvider: Send + Sync + 'static {
    /// A new, empty sandbox directory (the clone into it brings the template's git config).
    fn create(&self, name: &str) -> BoxFuture<'_, Result<PathBuf, JobError>>;
    /// Removes a sandbox directory and everything in it.
    fn destroy<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), JobError>>;
}

/// Directories under one root, on this machine.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    root: PathBuf,
}

impl LocalProvider {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> JobError {
    JobError::internal(format!("{what} {}: {e}", path.display()))
}

impl SandboxProvider for LocalProvider {
    fn create(&self, name: &str) -> BoxFuture<'_, Result<PathBuf, JobError>> {
        let dir = self.root.join(name);
        Box::pin(async move {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_error("cannot create sandbox", &dir, e))?;
            Ok(dir)
        })
    }

    fn destroy<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            if !dir.starts_with(&self.root) {
                return Err(JobError::internal(format!(
                    "refusing to remove {}: not under the sandbox root",
                    dir.display()
                )));
            }
            match tokio::fs::remove_dir_all(dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("cannot remove sandbox", dir, e)),
            }
        })
    }
}
