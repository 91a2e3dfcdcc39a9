//! `diff`: the sandbox's changes against HEAD (or, with `staged`, the index against HEAD),
//! optionally limited to `paths`. Result: `diff` (capped), `files_changed`, `insertions`,
//! `deletions`, `truncated`.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{DiffArgs, DiffResult, Rules};
use gitfleet_contract::{JobError, OpArgs, fields};
use serde_json::Value;

use super::{Op, RunContext, result};
use crate::git::RunOptions;

pub struct DiffOp;

/// Totals from `git diff --numstat -z`.
pub(crate) fn numstat(out: &[u8]) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(out);
    let mut parts = text.split('\0').peekable();
    let (mut files, mut ins, mut del) = (0, 0, 0);
    while let Some(entry) = parts.next() {
        if entry.is_empty() {
            continue;
        }
        let mut cols = entry.splitn(3, '\t');
        let (a, d, path) = (cols.next(), cols.next(), cols.next());
        if path == Some("") {
            // A rename: the two paths follow as fields of their own.
            parts.next();
            parts.next();
        }
        files += 1;
        ins += a.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
        del += d.and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
    }
    (files, ins, del)
}

impl Op for DiffOp {
    fn name(&self) -> &'static str {
        DiffArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        DiffArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(120)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (manager, sandbox) = ctx.sandbox(&args)?;
            let DiffArgs { paths, staged, .. } = DiffArgs::parse(&args, &Rules::default())?;
            let paths: Vec<String> = paths
                .iter()
                .map(|p| fields::as_checked(p).to_string())
                .collect();
            let _busy = sandbox.lock().await;
            // A repository's .gitmodules must not be able to make diff fail.
            let mut base = vec![
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--ignore-submodules=all",
            ];
            if staged {
                base.push("--cached");
            }
            // Where the tree can differ from HEAD is known (see `Sandbox::status_scope`): the
            // index is HEAD, so nothing is staged, and the working tree differs at most at
            // the touched paths; git is asked about those only (or not at all).
            let scoped: Option<Vec<String>> = match sandbox.status_scope() {
                Some(touched) if paths.is_empty() => Some(if staged {
                    Vec::new()
                } else {
                    touched.iter().map(|p| format!(":(literal){p}")).collect()
                }),
                _ => None,
            };
            if scoped.as_ref().is_some_and(Vec::is_empty) {
                return result(DiffResult::default());
            }
            let pathspecs: Vec<&str> = match &scoped {
                Some(literal) => literal.iter().map(String::as_str).collect(),
                None => paths.iter().map(String::as_str).collect(),
            };
            let mut stat = base.clone();
            stat.extend(["--numstat", "-z", "--"]);
            stat.extend(pathspecs.iter().copied());
            let mut full = base;
            full.push("--");
            full.extend(pathspecs.iter().copied());
            let counts = manager
                .git_in(&sandbox, &stat, RunOptions::default())
                .await?;
            // The text may be cut (the result says so); the counts may not.
            let text = manager
                .git_in(
                    &sandbox,
                    &full,
                    RunOptions {
                        allow_truncated: true,
                        ..RunOptions::default()
                    },
                )
                .await?;
            let (files, ins, del) = numstat(&counts.stdout);
            result(DiffResult {
                diff: text.stdout_str(),
                files_changed: files,
                insertions: ins,
                deletions: del,
                truncated: text.truncated,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numstat_counts_files_lines_and_renames() {
        let out = b"3\t1\ta.txt\0-\t-\tbin.png\0\x30\t0\t\0old.txt\0new.txt\0";
        assert_eq!(super::numstat(out), (3, 3, 1));
    }
}
