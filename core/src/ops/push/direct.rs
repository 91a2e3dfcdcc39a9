//! `change` without a working copy: the job says exactly what changes, so its commit is
//! built straight in the repository's mirror, from the branch's tip and the job's files,
//! and joins the push group like any other commit. No checkout of the repository is
//! written, which is what made fifty concurrent `change` jobs slow: each needed a working
//! copy of its own.
//!
//! The commit is what clone → write_files → push would have made:
//! - the same path rules as `write_files`: besides the checks every path gets, a path that
//!   goes through a symlink or a submodule of the branch, whose parent is a file, or that
//!   names a directory, is refused (nothing is written then);
//! - contents are hashed with the branch's own `.gitattributes` (`attr.tree`), as `git add`
//!   in a working copy would apply them; an existing executable keeps its mode;
//! - the message as `git commit -m <message> -m <trailer>` writes it;
//! - no change against the tip is `invalid_input` ("nothing to commit").

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use crate::git::{RunOptions, Sees};
use crate::sandbox::{CloneRequest, SandboxManager};
use gitfleet_contract::JobError;
use gitfleet_contract::ops::FileChange;

/// Builds the job's commit on `req.branch` in the mirror; returns its id.
pub(super) async fn build_commit(
    manager: &SandboxManager,
    req: &CloneRequest,
    files: &[FileChange],
    message: &str,
    trailer: &str,
) -> Result<String, JobError> {
    let refreshed = manager.mirrors().refresh(&req.repo, &req.branch).await?;
    let mirror = refreshed.path;
    let git = |args: Vec<String>, options: RunOptions| {
        let mirror = mirror.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            manager.git().run(&mirror, &args, options).await
        }
    };
    let Some(tip) = refreshed.tip else {
        return Err(JobError::invalid_input(format!(
            "branch: the repository has no branch {:?}",
            req.branch
        )));
    };
    let tip = git(
        strings(&[
            "log",
            "-1",
            "--format=%H %T",
            "--end-of-options",
            &tip,
            "--",
        ]),
        RunOptions::default(),
    )
    .await?;
    let tip = tip.stdout_str();
    let Some((base, base_tree)) = tip.trim().split_once(' ') else {
        return Err(JobError::invalid_input(format!(
            "branch: the repository has no branch {:?}",
            req.branch
        )));
    };
    let (base, base_tree) = (base.to_string(), base_tree.to_string());
    let modes = existing_modes(manager, &mirror, &base, files).await?;
    for change in files {
        check_against_tree(change, &modes)?;
    }

    // Blobs: the contents written to a scratch directory at their own relative paths, and
    // hashed in one process with the branch's attributes.
    let scratch = tempfile::Builder::new()
        .prefix("change-")
        .tempdir_in(scratch_root(manager).await?)
        .map_err(|e| JobError::internal(format!("cannot make a scratch directory: {e}")))?;
    let mut written = Vec::new();
    for change in files {
        if let Some(bytes) = &change.content {
            let at = scratch.path().join(&change.path);
            if let Some(parent) = at.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| JobError::internal(format!("{}: {e}", change.field)))?;
            }
            tokio::fs::write(&at, bytes)
                .await
                .map_err(|e| JobError::internal(format!("{}: {e}", change.field)))?;
            written.push(change);
        }
    }
    let mut index_info = Vec::new();
    if !written.is_empty() {
        // Every name C-quoted: `--stdin-paths` unquotes a line that starts with `"`, so a
        // job path such as `"/etc/passwd"` written as it is would hash another file.
        let stdin: String = written
            .iter()
            .map(|c| format!("{}\n", c_quote(&c.path.to_string_lossy())))
            .collect();
        let attr_tree = format!("attr.tree={base}");
        let hashed = manager
            .git()
            .run(
                scratch.path(),
                &["-c", &attr_tree, "hash-object", "-w", "--stdin-paths"],
                RunOptions {
                    stdin: Some(stdin.into_bytes()),
                    env: vec![(OsString::from("GIT_DIR"), mirror.clone().into_os_string())],
                    sees: Sees::default().and_read_write(&mirror),
                    ..Default::default()
                },
            )
            .await?;
        let hashed = hashed.stdout_str();
        let shas: Vec<&str> = hashed.lines().collect();
        if shas.len() != written.len() {
            return Err(JobError::internal(
                "git hash-object returned fewer ids than files",
            ));
        }
        for (change, sha) in written.iter().zip(shas) {
            let path = change.path.to_string_lossy();
            let mode = match modes.get(path.as_ref()).map(String::as_str) {
                Some("100755") => "100755",
                _ => "100644",
            };
            index_info.extend_from_slice(format!("{mode} {sha}\t{path}\0").as_bytes());
        }
    }
    for change in files.iter().filter(|c| c.content.is_none()) {
        let path = change.path.to_string_lossy();
        if modes.contains_key(path.as_ref()) {
            index_info
                .extend_from_slice(format!("0 {}\t{path}\0", "0".repeat(base.len())).as_bytes());
        }
    }

    // The tree: the tip's, with the changes, through an index of the job's own.
    let index = scratch.path().join(".index");
    // Jailed, git in the mirror also sees the scratch directory, where the index is.
    let with_index = |stdin: Option<Vec<u8>>| RunOptions {
        stdin,
        env: vec![(
            OsString::from("GIT_INDEX_FILE"),
            index.clone().into_os_string(),
        )],
        sees: Sees::default().and_read_write(scratch.path()),
        ..Default::default()
    };
    git(strings(&["read-tree", &base]), with_index(None)).await?;
    git(
        strings(&["update-index", "-z", "--index-info"]),
        with_index(Some(index_info)),
    )
    .await?;
    let tree = git(strings(&["write-tree"]), with_index(None)).await?;
    let tree = tree.stdout_str().trim().to_string();
    if base_tree == tree {
        return Err(JobError::invalid_input(
            "nothing to commit: the files are as the branch has them",
        ));
    }
    let made = git(
        strings(&[
            "commit-tree",
            "-p",
            &base,
            "-F",
            "-",
            "--end-of-options",
            &tree,
        ]),
        RunOptions {
            stdin: Some(commit_message(message, trailer).into_bytes()),
            ..Default::default()
        },
    )
    .await?;
    Ok(made.stdout_str().trim().to_string())
}

/// `name` as git's `unquote_c_style` reads it back byte for byte: in double quotes, `"` and
/// `\\` escaped, control bytes as three-digit octal; other bytes (UTF-8 included) as they are.
fn c_quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Where scratch directories go: inside the worker's root, so nothing lands outside it.
async fn scratch_root(manager: &SandboxManager) -> Result<std::path::PathBuf, JobError> {
    let root = manager.config().root.join("scratch");
    tokio::fs::create_dir_all(&root)
        .await
        .map_err(|e| JobError::internal(format!("cannot create {}: {e}", root.display())))?;
    Ok(root)
}

/// The modes, on the branch's tip, of every path the job names and of each directory above
/// it that exists (`040000` a directory, `120000` a symlink, `160000` a submodule).
async fn existing_modes(
    manager: &SandboxManager,
    mirror: &Path,
    base: &str,
    files: &[FileChange],
) -> Result<HashMap<String, String>, JobError> {
    let mut wanted: Vec<String> = Vec::new();
    for change in files {
        let mut prefix = std::path::PathBuf::new();
        for component in change.path.components() {
            prefix.push(component);
            let p = prefix.to_string_lossy().into_owned();
            if !wanted.contains(&p) {
                wanted.push(p);
            }
        }
    }
    let mut args: Vec<&str> = vec!["--literal-pathspecs", "ls-tree", "-z", base, "--"];
    args.extend(wanted.iter().map(String::as_str));
    let out = manager
        .git()
        .run(mirror, &args, RunOptions::default())
        .await?;
    let listed = out.stdout_str();
    Ok(listed
        .split('\0')
        .filter_map(|entry| {
            let (meta, path) = entry.split_once('\t')?;
            let mode = meta.split(' ').next()?;
            Some((path.to_string(), mode.to_string()))
        })
        .collect())
}

/// `write_files`'s rules, checked against the branch's tree instead of a working copy.
fn check_against_tree(
    change: &FileChange,
    modes: &HashMap<String, String>,
) -> Result<(), JobError> {
    let refuse = |why: String| {
        Err(JobError::invalid_input(format!(
            "{}: {} {why}",
            change.field,
            change.path.display()
        )))
    };
    let mut prefix = std::path::PathBuf::new();
    let components: Vec<_> = change.path.components().collect();
    for (i, component) in components.iter().enumerate() {
        prefix.push(component);
        let p = prefix.to_string_lossy();
        let last = i + 1 == components.len();
        match modes.get(p.as_ref()).map(String::as_str) {
            None | Some("040000") if !last => {}
            None => {}
            Some("120000") => return refuse(format!("goes through a symlink ({p})")),
            Some("160000") => return refuse(format!("goes into a submodule ({p})")),
            Some("040000") => return refuse("is a directory".to_string()),
            Some(_) if !last => return refuse(format!("cannot be made: {p} is a file")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The message as `git commit -m <message> -m <trailer>` writes it: each paragraph with
/// trailing whitespace and surrounding blank lines removed, blank lines collapsed.
fn commit_message(message: &str, trailer: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in message.lines().map(str::trim_end) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(trailer);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cleaned_like_git_commit_m() {
        assert_eq!(
            commit_message("Fix it  \n\n\n  body line\n\n", "Gitfleet-Job: 1"),
            "Fix it\n\n  body line\n\nGitfleet-Job: 1\n"
        );
        assert_eq!(
            commit_message("\n\nsubject", "Gitfleet-Job: 2"),
            "subject\n\nGitfleet-Job: 2\n"
        );
    }

    #[test]
    fn names_are_quoted_the_way_git_unquotes_them() {
        assert_eq!(c_quote("a/b.txt"), r#""a/b.txt""#);
        assert_eq!(c_quote(r#""quoted.txt"#), r#""\"quoted.txt""#);
        assert_eq!(c_quote(r#"a"b"#), r#""a\"b""#);
        assert_eq!(c_quote(r"a\b"), r#""a\\b""#);
        assert_eq!(c_quote("a\nb\x7f"), r#""a\012b\177""#);
        assert_eq!(c_quote("ünï"), "\"ünï\"");
    }

    fn change(path: &str) -> FileChange {
        FileChange {
            field: "files[0].path".into(),
            path: path.into(),
            content: Some(b"x".to_vec()),
        }
    }

    #[test]
    fn paths_through_links_submodules_and_files_are_refused() {
        let modes: HashMap<String, String> = [
            ("link", "120000"),
            ("sub", "160000"),
            ("dir", "040000"),
            ("dir/file", "100644"),
            ("dir/tool", "100755"),
        ]
        .into_iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
        for (path, why) in [
            ("link/x", "symlink"),
            ("link", "symlink"),
            ("sub/x", "submodule"),
            ("dir", "directory"),
            ("dir/file/x", "is a file"),
        ] {
            let e = check_against_tree(&change(path), &modes).unwrap_err();
            assert!(e.message.contains(why), "{path}: {e:?}");
            assert!(e.message.starts_with("files[0].path"), "{e:?}");
        }
        for path in ["dir/new", "dir/file", "dir/tool", "new/deep/file"] {
            assert!(check_against_tree(&change(path), &modes).is_ok(), "{path}");
        }
    }
}
