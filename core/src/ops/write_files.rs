//! `write_files`: writes (or deletes) files in a sandbox's working tree. Each path is
//! checked before anything is written: inside the tree, nothing under `.git`, and no
//! existing component of it a symlink, so a repository cannot redirect a write outside
//! its sandbox through a link it contains. A file overwritten keeps its mode. Result:
//! `written`, `deleted`.

use std::path::Path;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::write_files::{FileChange, changes};
use gitfleet_contract::ops::{Rules, WriteFilesArgs, WriteFilesResult};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};

pub struct WriteFilesOp;

/// Refuses a path any existing component of which (the file itself included) is a
/// symlink, or whose parent is not a directory.
async fn check_no_links(work: &Path, change: &FileChange) -> Result<(), JobError> {
    let mut at = work.to_path_buf();
    for component in change.path.components() {
        at.push(component);
        match tokio::fs::symlink_metadata(&at).await {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(JobError::invalid_input(format!(
                    "{}: {} goes through a symlink ({})",
                    change.field,
                    change.path.display(),
                    at.strip_prefix(work).unwrap_or(&at).display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(JobError::internal(format!("{}: {e}", change.field)));
            }
        }
    }
    Ok(())
}

/// Applies the changes, all checked first: nothing is written if any path is refused.
pub(crate) async fn apply(work: &Path, changes: &[FileChange]) -> Result<(u64, u64), JobError> {
    for change in changes {
        check_no_links(work, change).await?;
    }
    let (mut written, mut deleted) = (0, 0);
    for change in changes {
        let target = work.join(&change.path);
        match &change.content {
            None => match tokio::fs::remove_file(&target).await {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(JobError::invalid_input(format!(
                        "{}: cannot delete {}: {e}",
                        change.field,
                        change.path.display()
                    )));
                }
            },
            Some(bytes) => {
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| {
                        JobError::invalid_input(format!(
                            "{}: cannot create its directory: {e}",
                            change.field
                        ))
                    })?;
                }
                if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
                    return Err(JobError::invalid_input(format!(
                        "{}: {} is a directory",
                        change.field,
                        change.path.display()
                    )));
                }
                // Write beside, then rename: a reader never sees half a file.
                let tmp = target.with_file_name(format!(".gitfleet-{}.tmp", ulid::Ulid::new()));
                tokio::fs::write(&tmp, bytes)
                    .await
                    .map_err(|e| JobError::internal(format!("{}: {e}", change.field)))?;
                // Overwriting keeps the file's mode (an executable stays one).
                if let Ok(meta) = tokio::fs::metadata(&target).await {
                    tokio::fs::set_permissions(&tmp, meta.permissions())
                        .await
                        .map_err(|e| JobError::internal(format!("{}: {e}", change.field)))?;
                }
                tokio::fs::rename(&tmp, &target)
                    .await
                    .map_err(|e| JobError::internal(format!("{}: {e}", change.field)))?;
                written += 1;
            }
        }
    }
    Ok((written, deleted))
}

impl Op for WriteFilesOp {
    fn name(&self) -> &'static str {
        WriteFilesArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        WriteFilesArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(120)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (_, sandbox) = ctx.sandbox(&args)?;
            let changes = changes(&args)?;
            let _busy = sandbox.lock().await;
            // Recorded before writing, as the paths git will see them.
            let touched: Option<Vec<String>> = changes.iter().map(|c| c.git_path()).collect();
            match &touched {
                Some(paths) => sandbox.touched(paths.iter().map(String::as_str)),
                None => sandbox.tree_unknown(),
            }
            let (written, deleted) = apply(&sandbox.work(), &changes)
                .await
                // A failure half-way may leave a temporary file behind.
                .inspect_err(|_| sandbox.tree_unknown())?;
            result(WriteFilesResult { written, deleted })
        }
        .boxed()
    }
}
