//! Disk limits of one sandbox: the bytes it holds (its working tree and its own objects),
//! its files, its largest file.
//!
//! A checkout is checked before it writes anything, from the sizes the tree itself records
//! (`git ls-tree -r --format=%(objectsize)`, against the mirror, before a sandbox directory
//! is even taken), so a repository whose pack is small but whose files are huge is refused
//! without a byte of it in a working tree. Listings are kept per commit (a commit's tree
//! never changes), so cloning a tip that was checked before costs no git process.
//!
//! After that each sandbox keeps a running count ([`Usage`]) instead of walking its tree:
//! `write_files` adds what it writes less what it replaces (one `lstat` per file it names),
//! and where git moves the tree from one commit to another (`pull`, the move onto a landed
//! commit after a grouped push) the count moves by the difference of the two trees' sizes,
//! checked before the move: `reset --keep` keeps local changes only in files the move
//! does not touch, so that difference is exact. A full sandbox's own objects stay empty
//! (it borrows the mirror's, and commits go into the mirror); a shallow one's are counted
//! by walking its `.git/objects` after each fetch into it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gitfleet_contract::JobError;
use gitfleet_contract::config::{ConfigError, parse_var};
use gitfleet_contract::ops::FileChange;
use gitfleet_contract::rules::RepoUrl;

use super::{Sandbox, SandboxManager};
use crate::git::RunOptions;

/// Disk limits of one sandbox. Every field's variable and default is on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// `GITFLEET_SANDBOX_MAX_BYTES`, default 2 GiB: the sum of the sizes of the files in the
    /// working tree, plus the sandbox's own objects (a shallow clone's pack).
    pub max_bytes: u64,
    /// `GITFLEET_SANDBOX_MAX_FILES`, default 200,000: files in the working tree.
    pub max_files: u64,
    /// `GITFLEET_MAX_BLOB_BYTES`, default 100 MiB: the largest single file.
    pub max_blob_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            max_files: 200_000,
            max_blob_bytes: 100 << 20,
        }
    }
}

/// What a sandbox holds, as its limits count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The sum of the sizes of the files in the working tree.
    pub tree_bytes: u64,
    /// The sandbox's own objects (not the mirror's it borrows).
    pub object_bytes: u64,
    /// Files in the working tree.
    pub files: u64,
}

impl Usage {
    pub fn bytes(&self) -> u64 {
        self.tree_bytes.saturating_add(self.object_bytes)
    }

    /// This usage with the working tree moved from a tree of size `from` to one of `to`.
    fn moved(self, from: &TreeSize, to: &TreeSize) -> Self {
        let shift = |now: u64, from: u64, to: u64| {
            let v = i128::from(now) + i128::from(to) - i128::from(from);
            u64::try_from(v.max(0)).unwrap_or(u64::MAX)
        };
        Self {
            tree_bytes: shift(self.tree_bytes, from.bytes, to.bytes),
            object_bytes: self.object_bytes,
            files: shift(self.files, from.files, to.files),
        }
    }
}

/// What checking out a tree writes (only the paths a sparse checkout keeps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TreeSize {
    pub bytes: u64,
    pub files: u64,
    pub largest: u64,
    /// The listing was longer than the runner keeps: there are at least `files` files.
    pub cut: bool,
}

impl TreeSize {
    /// Reads `ls-tree --format=%(objectsize)` output: one size a line, `-` for a
    /// submodule (which checks out as an empty directory).
    fn parse(listing: &[u8], cut: bool) -> Self {
        let mut size = Self {
            cut,
            ..Self::default()
        };
        let mut lines = listing.split(|b| *b == b'\n').peekable();
        while let Some(line) = lines.next() {
            // A cut listing's last line may be part of a number.
            if cut && lines.peek().is_none() {
                break;
            }
            let Some(n) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.trim().parse::<u64>().ok())
            else {
                continue;
            };
            size.bytes = size.bytes.saturating_add(n);
            size.files += 1;
            size.largest = size.largest.max(n);
        }
        size
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage {
            tree_bytes: self.bytes,
            object_bytes: 0,
            files: self.files,
        }
    }
}

impl SandboxLimits {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_bytes: parse_var("GITFLEET_SANDBOX_MAX_BYTES", d.max_bytes)?,
            max_files: parse_var("GITFLEET_SANDBOX_MAX_FILES", d.max_files)?,
            max_blob_bytes: parse_var("GITFLEET_MAX_BLOB_BYTES", d.max_blob_bytes)?,
        })
    }

    /// Refuses `usage` over the byte or file limit; `what` begins the message ("files:
    /// the sandbox would hold").
    pub(crate) fn check(&self, what: &str, usage: Usage) -> Result<(), JobError> {
        if usage.files > self.max_files {
            return Err(JobError::invalid_input(format!(
                "{what} {} files, over the limit of {} files per sandbox \
                 (GITFLEET_SANDBOX_MAX_FILES)",
                usage.files, self.max_files
            )));
        }
        if usage.bytes() > self.max_bytes {
            return Err(JobError::invalid_input(format!(
                "{what} {} bytes, over the limit of {} bytes per sandbox \
                 (GITFLEET_SANDBOX_MAX_BYTES)",
                usage.bytes(),
                self.max_bytes
            )));
        }
        Ok(())
    }

    /// Refuses a file of `bytes` over the largest-file limit; `what` names it.
    fn check_file(&self, what: &str, bytes: u64) -> Result<(), JobError> {
        if bytes > self.max_blob_bytes {
            return Err(JobError::invalid_input(format!(
                "{what} is {bytes} bytes, over the limit of {} bytes per file \
                 (GITFLEET_MAX_BLOB_BYTES)",
                self.max_blob_bytes
            )));
        }
        Ok(())
    }

    /// Refuses a job's file over the largest-file limit.
    pub fn check_files(&self, files: &[FileChange]) -> Result<(), JobError> {
        for change in files {
            if let Some(content) = &change.content {
                self.check_file(&format!("{}: the file", change.field), content.len() as u64)?;
            }
        }
        Ok(())
    }
}

/// Commits whose tree sizes are kept, at most (each entry is a few dozen bytes).
const KEPT_SIZES: usize = 1024;

/// Tree sizes already listed, by commit and sparse paths.
#[derive(Debug, Default)]
pub(crate) struct TreeSizes {
    by_commit: HashMap<String, TreeSize>,
}

/// The pathspecs that list what a sparse checkout of `sparse` keeps, or `None` when the
/// whole tree must be listed. The checkout's patterns are `/<path>` (`--no-cone`), which
/// keep the path and everything under it, exactly what a literal pathspec lists; a path
/// with a character a pattern reads differently (a glob, trailing space) lists the whole
/// tree instead, which can only count more than is checked out.
fn sparse_pathspecs(sparse: &[String]) -> Option<Vec<String>> {
    let literal =
        |p: &String| !p.contains(['*', '?', '[', '\\']) && !p.ends_with(char::is_whitespace);
    (!sparse.is_empty() && sparse.iter().all(literal))
        .then(|| sparse.iter().map(|p| format!(":(literal){p}")).collect())
}

/// Bytes of the files under `dir` (a sandbox's own objects), walked without following
/// links; 0 if it is not there.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => {
                    total = total.saturating_add(entry.metadata().map_or(0, |m| m.len()));
                }
                _ => {}
            }
        }
    }
    total
}

impl SandboxManager {
    pub fn limits(&self) -> &SandboxLimits {
        &self.config.limits
    }

    /// What checking out `commit` (with `sparse`) writes, listed by git in `dir` (a mirror,
    /// or a working copy that has the commit's objects).
    pub(crate) async fn tree_size(
        &self,
        dir: &Path,
        repo: &RepoUrl,
        commit: &str,
        sparse: &[String],
    ) -> Result<TreeSize, JobError> {
        let key = format!("{commit}\0{}", sparse.join("\0"));
        if let Some(size) = self.sizes.lock().expect("not poisoned").by_commit.get(&key) {
            return Ok(*size);
        }
        let listed = self
            .list_tree(dir, repo, &["--format=%(objectsize)"], commit, sparse)
            .await?;
        let size = TreeSize::parse(&listed.stdout, listed.truncated);
        if !size.cut {
            let mut sizes = self.sizes.lock().expect("not poisoned");
            if sizes.by_commit.len() >= KEPT_SIZES {
                sizes.by_commit.clear();
            }
            sizes.by_commit.insert(key, size);
        }
        Ok(size)
    }

    /// Refuses a tree (`size`, of `commit` listed in `dir`; the sandbox would hold `usage`
    /// with it) that breaks a limit; `what` begins the message. A file over the largest-file
    /// limit is named (one more listing, only then).
    pub(crate) async fn check_tree(
        &self,
        what: &str,
        // Where it was listed: a mirror, or a working copy of `repo`.
        (dir, repo): (&Path, &RepoUrl),
        commit: &str,
        sparse: &[String],
        size: &TreeSize,
        usage: Usage,
    ) -> Result<(), JobError> {
        let limits = self.limits();
        if size.cut {
            return Err(JobError::invalid_input(format!(
                "{what} more than {} files, too many to list before checking out (the limit \
                 is {} files per sandbox, GITFLEET_SANDBOX_MAX_FILES)",
                size.files, limits.max_files
            )));
        }
        // The largest file first: it names the file, the most useful thing to know.
        if size.largest > limits.max_blob_bytes {
            let name = self
                .large_file(dir, repo, commit, sparse, limits.max_blob_bytes)
                .await
                .unwrap_or_else(|| "a file".into());
            return limits.check_file(&format!("{what} {name}, which"), size.largest);
        }
        limits.check(what, usage)
    }

    /// `ls-tree -r <format> <commit> [-- <sparse pathspecs>]` in `dir` (a mirror, or a
    /// working copy of `repo`: jailed, it reads the objects it borrows from the mirror). A
    /// cut listing is returned as such (it still proves "at least this many files").
    async fn list_tree(
        &self,
        dir: &Path,
        repo: &RepoUrl,
        format: &[&str],
        commit: &str,
        sparse: &[String],
    ) -> Result<crate::git::GitOutput, JobError> {
        let pathspecs = sparse_pathspecs(sparse);
        let mut args = vec!["ls-tree", "-r"];
        args.extend_from_slice(format);
        args.extend(["--end-of-options", commit]);
        if let Some(specs) = &pathspecs {
            args.push("--");
            args.extend(specs.iter().map(String::as_str));
        }
        let options = RunOptions {
            allow_truncated: true,
            ..Default::default()
        };
        self.git_copy(dir, repo, &args, options).await
    }

    /// The path of a file of `commit` over `limit` bytes, for the message that refuses it.
    async fn large_file(
        &self,
        dir: &Path,
        repo: &RepoUrl,
        commit: &str,
        sparse: &[String],
        limit: u64,
    ) -> Option<String> {
        let format = ["-z", "--format=%(objectsize) %(path)"];
        let listed = self
            .list_tree(dir, repo, &format, commit, sparse)
            .await
            .ok()?;
        listed.stdout.split(|b| *b == 0).find_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (n, path) = entry.split_once(' ')?;
            (n.parse::<u64>().ok()? > limit).then(|| format!("{path:?}"))
        })
    }

    /// Checks that `commit` can be checked out in a new sandbox (listed in `dir`), before
    /// anything is written; returns what the sandbox will hold.
    pub(crate) async fn check_checkout(
        &self,
        what: &str,
        dir: &Path,
        repo: &RepoUrl,
        commit: &str,
        sparse: &[String],
    ) -> Result<Usage, JobError> {
        let size = self.tree_size(dir, repo, commit, sparse).await?;
        let usage = size.usage();
        self.check_tree(what, (dir, repo), commit, sparse, &size, usage)
            .await?;
        Ok(usage)
    }

    /// What `sandbox` will hold once its tree moves from commit `from` to `to` (keeping its
    /// local changes, as `reset --keep` does), refused if that breaks a limit: checked
    /// before the move, so a refused move writes nothing.
    pub(crate) async fn check_move(
        &self,
        what: &str,
        sandbox: &Sandbox,
        from: &str,
        to: &str,
    ) -> Result<Usage, JobError> {
        let (usage, after) = self.usage_moved(sandbox, from, to).await?;
        self.check_tree(
            what,
            (&sandbox.work(), &sandbox.repo),
            to,
            &sandbox.sparse_paths,
            &after,
            usage,
        )
        .await?;
        Ok(usage)
    }

    /// What `sandbox` holds once its tree moved from commit `from` to `to`, unchecked (for
    /// a move already made), and the size of the tree of `to`.
    pub(crate) async fn usage_moved(
        &self,
        sandbox: &Sandbox,
        from: &str,
        to: &str,
    ) -> Result<(Usage, TreeSize), JobError> {
        let work = sandbox.work();
        let paths = &sandbox.sparse_paths;
        let before = self.tree_size(&work, &sandbox.repo, from, paths).await?;
        let after = self.tree_size(&work, &sandbox.repo, to, paths).await?;
        Ok((sandbox.usage().moved(&before, &after), after))
    }

    /// Counts a shallow sandbox's own objects again (after a fetch into it); a full
    /// sandbox's are the mirror's and stay uncounted.
    pub(crate) async fn recount_objects(&self, sandbox: &Sandbox) {
        if !sandbox.shallow {
            return;
        }
        let bytes = own_object_bytes(sandbox.objects()).await;
        sandbox.update_usage(|u| u.object_bytes = bytes);
    }
}

/// Bytes of a working copy's own objects.
pub(crate) async fn own_object_bytes(objects: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || bytes_under(&objects))
        .await
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_counts_files_and_bytes_and_skips_submodules() {
        let size = TreeSize::parse(b"10\n-\n300\n0\n", false);
        assert_eq!(
            size,
            TreeSize {
                bytes: 310,
                files: 3,
                largest: 300,
                cut: false
            }
        );
        // A cut listing drops its last, perhaps partial, line.
        let cut = TreeSize::parse(b"10\n20\n3", true);
        assert_eq!((cut.files, cut.bytes, cut.cut), (2, 30, true));
    }

    #[test]
    fn only_literal_sparse_paths_narrow_the_listing() {
        assert_eq!(sparse_pathspecs(&[]), None);
        assert_eq!(
            sparse_pathspecs(&["src".into(), "docs/a b".into()]),
            Some(vec![":(literal)src".into(), ":(literal)docs/a b".into()])
        );
        assert_eq!(sparse_pathspecs(&["src".into(), "*.rs".into()]), None);
        assert_eq!(sparse_pathspecs(&["src ".into()]), None);
    }

    #[test]
    fn a_move_shifts_the_count_by_the_difference_of_the_trees() {
        let now = Usage {
            tree_bytes: 100,
            object_bytes: 7,
            files: 10,
        };
        let from = TreeSize {
            bytes: 80,
            files: 8,
            ..Default::default()
        };
        let to = TreeSize {
            bytes: 200,
            files: 5,
            ..Default::default()
        };
        assert_eq!(
            now.moved(&from, &to),
            Usage {
                tree_bytes: 220,
                object_bytes: 7,
                files: 7
            }
        );
        assert_eq!(now.moved(&to, &from).tree_bytes, 0, "never below zero");
    }

    #[test]
    fn each_limit_is_named_with_the_size_and_the_limit() {
        let limits = SandboxLimits {
            max_bytes: 1000,
            max_files: 10,
            max_blob_bytes: 100,
        };
        let usage = |tree_bytes, files| Usage {
            tree_bytes,
            object_bytes: 0,
            files,
        };
        limits.check("x:", usage(1000, 10)).unwrap();
        assert_eq!(
            limits
                .check("x: holds", usage(1001, 1))
                .unwrap_err()
                .message,
            "x: holds 1001 bytes, over the limit of 1000 bytes per sandbox \
             (GITFLEET_SANDBOX_MAX_BYTES)"
        );
        assert_eq!(
            limits.check("x: holds", usage(1, 11)).unwrap_err().message,
            "x: holds 11 files, over the limit of 10 files per sandbox \
             (GITFLEET_SANDBOX_MAX_FILES)"
        );
        assert_eq!(
            limits.check_file("f", 101).unwrap_err().message,
            "f is 101 bytes, over the limit of 100 bytes per file (GITFLEET_MAX_BLOB_BYTES)"
        );
    }
}
