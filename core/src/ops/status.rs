//! `status`: where a sandbox stands. Result: `branch`, `head_sha`, `ahead`, `behind`
//! (against the branch it was cloned from), and the paths `staged`, `modified`,
//! `untracked`, `conflicted`. When the worker knows which paths can differ from HEAD (see
//! `Sandbox::status_scope`), git is asked about those only.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{Rules, StatusArgs, StatusResult};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};
use crate::git::RunOptions;

pub struct StatusOp;

/// `git status --porcelain=v2 --branch -z`, read into the result.
pub(crate) fn parse(out: &[u8]) -> StatusResult {
    let text = String::from_utf8_lossy(out);
    let mut fields = text.split('\0');
    let (mut branch, mut head, mut ahead, mut behind) = (String::new(), String::new(), 0i64, 0i64);
    let (mut staged, mut modified, mut untracked, mut conflicted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Some(entry) = fields.next() {
        if let Some(h) = entry.strip_prefix("# ") {
            let mut parts = h.split(' ');
            match parts.next() {
                Some("branch.oid") => head = parts.next().unwrap_or("").to_string(),
                Some("branch.head") => branch = parts.next().unwrap_or("").to_string(),
                Some("branch.ab") => {
                    ahead = parts
                        .next()
                        .and_then(|a| a.trim_start_matches('+').parse().ok())
                        .unwrap_or(0);
                    behind = parts
                        .next()
                        .and_then(|b| b.trim_start_matches('-').parse().ok())
                        .unwrap_or(0);
                }
                _ => {}
            }
            continue;
        }
        let kind = entry.chars().next();
        match kind {
            Some('1') | Some('2') => {
                let n = if kind == Some('1') { 8 } else { 9 };
                let parts: Vec<&str> = entry.splitn(n + 1, ' ').collect();
                let xy = parts.get(1).copied().unwrap_or("..");
                let path = parts.get(n).copied().unwrap_or("").to_string();
                if kind == Some('2') {
                    fields.next(); // the rename's original path
                }
                let mut xy = xy.chars();
                if xy.next().is_some_and(|x| x != '.') {
                    staged.push(path.clone());
                }
                if xy.next().is_some_and(|y| y != '.') {
                    modified.push(path);
                }
            }
            Some('u') => {
                let parts: Vec<&str> = entry.splitn(11, ' ').collect();
                conflicted.push(parts.get(10).copied().unwrap_or("").to_string());
            }
            Some('?') => untracked.push(entry[2..].to_string()),
            _ => {}
        }
    }
    StatusResult {
        branch,
        head_sha: head,
        ahead,
        behind,
        staged,
        modified,
        untracked,
        conflicted,
    }
}

impl Op for StatusOp {
    fn name(&self) -> &'static str {
        StatusArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        StatusArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let _busy = sandbox.lock().await;
            let mut git_args = vec![
                "status",
                "--ignore-submodules=all",
                "--porcelain=v2",
                "--branch",
                "-z",
            ];
            // Where the tree can differ from HEAD is known (only `write_files` touched it
            // since it was last seen clean), git looks only there: no `lstat` of every file.
            let scope = sandbox.status_scope();
            let pathspecs: Vec<String> = match &scope {
                None => {
                    git_args.push("--untracked-files=all");
                    Vec::new()
                }
                Some(paths) if paths.is_empty() => {
                    // Only the branch lines are wanted: a pathspec that matches nothing.
                    git_args.extend(["--untracked-files=no", "--"]);
                    vec![":(exclude)*".to_string()]
                }
                Some(paths) => {
                    git_args.extend(["--untracked-files=all", "--"]);
                    paths.iter().map(|p| format!(":(literal){p}")).collect()
                }
            };
            git_args.extend(pathspecs.iter().map(String::as_str));
            let out = manager
                .git_in(&sandbox, &git_args, RunOptions::default())
                .await?;
            let status = parse(&out.stdout);
            let nothing = [
                &status.staged,
                &status.modified,
                &status.untracked,
                &status.conflicted,
            ]
            .iter()
            .all(|list| list.is_empty());
            if scope.is_none() && nothing {
                sandbox.tree_clean();
            }
            result(status)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_v2_is_read_into_the_contract_fields() {
        let out = b"# branch.oid abc123\0# branch.head agent-a-t\0# branch.upstream origin/main\0\
# branch.ab +2 -1\0\
1 M. N... 100644 100644 100644 1111 2222 staged.txt\0\
1 .M N... 100644 100644 100644 1111 1111 dir/changed file.txt\0\
2 R. N... 100644 100644 100644 1111 1111 R100 new.txt\0old.txt\0\
u UU N... 100644 100644 100644 100644 1 2 3 both.txt\0\
? new dir/untracked.txt\0";
        let v = parse(out);
        assert_eq!(v.branch, "agent-a-t");
        assert_eq!(v.head_sha, "abc123");
        assert_eq!((v.ahead, v.behind), (2, 1));
        assert_eq!(v.staged, ["staged.txt", "new.txt"]);
        assert_eq!(v.modified, ["dir/changed file.txt"]);
        assert_eq!(v.conflicted, ["both.txt"]);
        assert_eq!(v.untracked, ["new dir/untracked.txt"]);
    }
}
