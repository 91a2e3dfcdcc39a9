//! `write_files`: writes (or deletes) files in a sandbox's working tree. Each path is
//! checked before anything is written: inside the tree, nothing under `.git`, and no
//! existing component of it a symlink, so a repository cannot redirect a write outside
//! its sandbox through a link it contains. Then what the sandbox would hold is checked
//! against its limits (bytes, files, largest file; see `sandbox::limits`), from its running
//! count: a job that would take it over is refused and nothing is written. A file
//! overwritten keeps its mode. Result: `written`, `deleted`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::write_files::{FileChange, changes};
use gitfleet_contract::ops::{JobLimits, Rules, WriteFilesArgs, WriteFilesResult};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};
use crate::sandbox::Usage;

/// `limits`: the job's write caps (`GITFLEET_JOB_MAX_WRITE_*`); the sandbox's own limits
/// are its manager's.
pub struct WriteFilesOp {
    pub limits: JobLimits,
}

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

/// What the sandbox will hold once `changes` are written into `work`, where it holds
/// `usage` now: each file named adds its new size less the size of the file it replaces
/// (one `lstat` each; a path named twice counts as it ends up). Call after
/// [`check_no_links`], so no `lstat` looks through a link.
async fn usage_after(work: &Path, changes: &[FileChange], usage: Usage) -> Usage {
    let mut ends: HashMap<&Path, Option<u64>> = HashMap::new();
    let (mut bytes, mut files) = (i128::from(usage.tree_bytes), i128::from(usage.files));
    for change in changes {
        let now = match ends.get(change.path.as_path()) {
            Some(size) => *size,
            None => match tokio::fs::symlink_metadata(work.join(&change.path)).await {
                Ok(meta) if meta.is_file() => Some(meta.len()),
                // Nothing there, or a directory (which the write refuses).
                _ => None,
            },
        };
        let then = change.content.as_ref().map(|c| c.len() as u64);
        bytes += i128::from(then.unwrap_or(0)) - i128::from(now.unwrap_or(0));
        files += i128::from(then.is_some()) - i128::from(now.is_some());
        ends.insert(&change.path, then);
    }
    let count = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    Usage {
        tree_bytes: count(bytes),
        files: count(files),
        ..usage
    }
}

/// Writes the changes (their paths checked by [`check_no_links`] first).
async fn write(work: &Path, changes: &[FileChange]) -> Result<(u64, u64), JobError> {
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
        WriteFilesArgs::check(
            args,
            &Rules {
                limits: self.limits,
                ..Default::default()
            },
        )
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(120)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let limits = self.limits;
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let changes = changes(&args, &limits)?;
            let _busy = sandbox.lock().await;
            let work = sandbox.work();
            // Everything is checked before anything is written: the paths, then what the
            // sandbox would hold (its running count, not a walk of its tree).
            for change in &changes {
                check_no_links(&work, change).await?;
            }
            manager.limits().check_files(&changes)?;
            let before = sandbox.usage();
            let after = usage_after(&work, &changes, before).await;
            // A write that makes the sandbox no larger is let through, even if it is over
            // (a shallow sandbox can be, after a rebase in place): it can only help.
            let grows = after.bytes() > before.bytes() || after.files > before.files;
            if grows {
                manager
                    .limits()
                    .check("files: the sandbox would hold", after)?;
            }
            // Recorded before writing, as the paths git will see them.
            let touched: Option<Vec<String>> = changes.iter().map(|c| c.git_path()).collect();
            match &touched {
                Some(paths) => sandbox.touched(paths.iter().map(String::as_str)),
                None => sandbox.tree_unknown(),
            }
            let written = write(&work, &changes).await;
            // Half-way through a failed write, the larger of the two is the safer count.
            sandbox.set_usage(match &written {
                Ok(_) => after,
                Err(_) => Usage {
                    tree_bytes: before.tree_bytes.max(after.tree_bytes),
                    files: before.files.max(after.files),
                    ..after
                },
            });
            // A failure half-way may leave a temporary file behind.
            let (written, deleted) = written.inspect_err(|_| sandbox.tree_unknown())?;
            result(WriteFilesResult { written, deleted })
        }
        .boxed()
    }
}
