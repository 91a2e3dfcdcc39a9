//! Git in a repository's bare mirror, with no working tree: commits replayed onto a tip
//! (`merge-tree --write-tree` + `commit-tree`, a real three-way merge), merges, trailers
//! found, the tip pushed. A push group replays its batch here and `pull` computes its rebase
//! or merge here; sandboxes write the objects they create into the mirror
//! ([`shared_objects`]), so the mirror sees every agent's commits.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use gitfleet_contract::JobError;
use gitfleet_contract::rules::RepoUrl;

use super::{Sandbox, SandboxManager};
use crate::git::{RunOptions, Sees};

/// How a request's commits went onto the tip.
pub(crate) enum Replayed {
    /// Nothing to add: its HEAD is on the tip already.
    Unchanged,
    /// Its commits sit right on the tip: the tip becomes its HEAD as it is.
    FastForward,
    /// Replayed: the new tip (its last commit) and that commit's tree.
    Onto { commit: String, tree: String },
    /// A commit does not apply: these paths conflict. Nothing was changed.
    Conflict(Vec<String>),
}

/// Git in a repository's mirror, seeing the batch's sandboxes' objects too.
pub(crate) struct Mirror<'a> {
    manager: &'a SandboxManager,
    repo: &'a RepoUrl,
    path: PathBuf,
    alternates: Vec<(OsString, OsString)>,
    /// Jailed, git in the mirror sees those stores too, read-only.
    stores: Sees,
}

/// One commit as `git cat-file` shows it: what a replay keeps.
struct CommitInfo {
    sha: String,
    /// First parent (`None` for a root commit).
    parent: Option<String>,
    author_name: String,
    author_email: String,
    /// `<seconds> <zone>`, git's own format.
    author_date: String,
    message: Vec<u8>,
}

impl<'a> Mirror<'a> {
    /// Git in `repo`'s mirror, reading `stores` (sandboxes' own object stores) too.
    pub(crate) fn new<'s>(
        manager: &'a SandboxManager,
        repo: &'a RepoUrl,
        stores: impl IntoIterator<Item = &'s PathBuf>,
    ) -> Self {
        let mut alternates: Vec<String> = Vec::new();
        let mut seen = Sees::default();
        for store in stores {
            seen.read_only.push(store.clone());
            let store = quote_alternate(&store.to_string_lossy());
            if !alternates.contains(&store) {
                alternates.push(store);
            }
        }
        Self {
            manager,
            repo,
            path: manager.mirrors().path(repo),
            alternates: vec![(
                OsString::from("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
                OsString::from(alternates.join(":")),
            )],
            stores: seen,
        }
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            env: self.alternates.clone(),
            sees: self.stores.clone(),
            ..Default::default()
        }
    }

    pub(crate) async fn git(&self, args: &[&str]) -> Result<crate::git::GitOutput, JobError> {
        self.manager
            .git()
            .run(&self.path, args, self.options())
            .await
    }

    /// Like [`Self::git`], returning a failed exit as `Ok`.
    pub(crate) async fn git_tolerant(
        &self,
        args: &[&str],
    ) -> Result<crate::git::GitOutput, JobError> {
        self.manager
            .git()
            .run(
                &self.path,
                args,
                RunOptions {
                    allow_failure: true,
                    ..self.options()
                },
            )
            .await
    }

    /// `git merge-tree --write-tree` of `ours` and `theirs` (with `merge_base`, a
    /// cherry-pick of `theirs`' change; without, their merge base): the merged tree, or the
    /// conflicting paths.
    async fn merge_tree(
        &self,
        merge_base: Option<&str>,
        ours: &str,
        theirs: &str,
    ) -> Result<Result<String, Vec<String>>, JobError> {
        let base_flag = merge_base.map(|b| format!("--merge-base={b}"));
        let mut args = vec![
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
        ];
        args.extend(base_flag.as_deref());
        args.extend(["--end-of-options", ours, theirs]);
        let merged = self.git_tolerant(&args).await?;
        let out = merged.stdout_str();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        let tree = fields.next().unwrap_or("").trim().to_string();
        match merged.status {
            0 => Ok(Ok(tree)),
            1 => {
                let mut paths: Vec<String> = fields.map(str::to_string).collect();
                paths.dedup();
                Ok(Err(paths))
            }
            _ => Err(JobError::internal(format!(
                "git merge-tree failed: {}",
                merged.stderr.trim()
            ))),
        }
    }

    /// Merges `theirs` into `ours` (neither an ancestor of the other): the merge commit, or
    /// the conflicting paths.
    pub(crate) async fn merge(
        &self,
        ours: &str,
        theirs: &str,
        their_name: &str,
    ) -> Result<Result<String, Vec<String>>, JobError> {
        let tree = match self.merge_tree(None, ours, theirs).await? {
            Ok(tree) => tree,
            Err(paths) => return Ok(Err(paths)),
        };
        let mut options = self.options();
        options.stdin = Some(format!("Merge {their_name}\n").into_bytes());
        let made = self
            .manager
            .git()
            .run(
                &self.path,
                &[
                    "commit-tree",
                    "-p",
                    ours,
                    "-p",
                    theirs,
                    "-F",
                    "-",
                    "--end-of-options",
                    &tree,
                ],
                options,
            )
            .await?;
        Ok(Ok(made.stdout_str().trim().to_string()))
    }

    pub(crate) async fn tree_of(&self, commit: &str) -> Result<String, JobError> {
        let spec = format!("{commit}^{{tree}}");
        let out = self
            .git(&["rev-parse", "--verify", "--end-of-options", &spec])
            .await?;
        Ok(out.stdout_str().trim().to_string())
    }

    /// The commit on `tip`'s history that carries `trailer`, if any.
    pub(crate) async fn find_trailer(
        &self,
        tip: &str,
        trailer: &str,
    ) -> Result<Option<String>, JobError> {
        let grep = format!("--grep={trailer}");
        let out = self
            .git(&[
                "log",
                "-F",
                &grep,
                "--format=%H",
                "-n",
                "1",
                "--end-of-options",
                tip,
                "--",
            ])
            .await?;
        let sha = out.stdout_str().trim().to_string();
        Ok((!sha.is_empty()).then_some(sha))
    }

    /// Puts the commits of `head` that `tip` lacks on top of `tip` (whose tree is
    /// `tip_tree`).
    pub(crate) async fn replay(
        &self,
        head: &str,
        tip: &str,
        tip_tree: Option<&str>,
    ) -> Result<Replayed, JobError> {
        let not_tip = format!("^{tip}");
        let listed = self
            .git(&[
                "rev-list",
                "--reverse",
                "--topo-order",
                "--parents",
                "--end-of-options",
                head,
                &not_tip,
            ])
            .await?;
        let listed = listed.stdout_str();
        let commits: Vec<Vec<&str>> = listed
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|c: &Vec<&str>| !c.is_empty())
            .collect();
        if commits.is_empty() {
            return Ok(Replayed::Unchanged);
        }
        // Linear, and starting right at the tip: nothing to rewrite.
        let linear_from_tip = commits.iter().enumerate().all(|(i, c)| {
            let expected = if i == 0 { tip } else { commits[i - 1][0] };
            c.len() == 2 && c[1] == expected
        });
        if linear_from_tip {
            return Ok(Replayed::FastForward);
        }
        let infos = self.read_commits(commits.iter().map(|c| c[0])).await?;
        let mut current = tip.to_string();
        let mut current_tree = tip_tree.map(str::to_string);
        for info in infos {
            let Some(parent) = &info.parent else {
                return Err(JobError::invalid_input(format!(
                    "commit {} has no parent and cannot be put on the branch's history",
                    info.sha
                )));
            };
            let tree = match self.merge_tree(Some(parent), &current, &info.sha).await? {
                Ok(tree) => tree,
                Err(paths) => return Ok(Replayed::Conflict(paths)),
            };
            if current_tree.as_deref() == Some(tree.as_str()) {
                // The same change is on the tip already.
                continue;
            }
            let mut options = self.options();
            options.stdin = Some(info.message.clone());
            options.env.extend([
                ("GIT_AUTHOR_NAME".into(), info.author_name.clone().into()),
                ("GIT_AUTHOR_EMAIL".into(), info.author_email.clone().into()),
                ("GIT_AUTHOR_DATE".into(), info.author_date.clone().into()),
            ]);
            let made = self
                .manager
                .git()
                .run(
                    &self.path,
                    &[
                        "commit-tree",
                        "-p",
                        &current,
                        "-F",
                        "-",
                        "--end-of-options",
                        &tree,
                    ],
                    options,
                )
                .await?;
            current = made.stdout_str().trim().to_string();
            current_tree = Some(tree);
        }
        match current_tree {
            Some(tree) if current != tip => Ok(Replayed::Onto {
                commit: current,
                tree,
            }),
            _ => Ok(Replayed::Unchanged),
        }
    }

    /// Reads commits with one `git cat-file --batch`.
    async fn read_commits(
        &self,
        shas: impl Iterator<Item = &str>,
    ) -> Result<Vec<CommitInfo>, JobError> {
        let input: String = shas.map(|s| format!("{s}\n")).collect();
        let mut options = self.options();
        options.stdin = Some(input.into_bytes());
        // Cut output is refused below, as the job's own doing (its commits are too large).
        options.allow_truncated = true;
        let out = self
            .manager
            .git()
            .run(&self.path, &["cat-file", "--batch"], options)
            .await?;
        if out.truncated {
            return Err(JobError::invalid_input(
                "the commits to push are larger than git output may be",
            ));
        }
        parse_batch(&out.stdout)
            .ok_or_else(|| JobError::internal("git cat-file --batch: output not understood"))
    }

    /// Pushes `tip` to `branch`, never forced.
    pub(crate) async fn push(&self, tip: &str, branch: &str) -> Result<(), JobError> {
        let refspec = format!("{tip}:refs/heads/{branch}");
        self.manager
            .git()
            .run(
                &self.path,
                &["push", "--porcelain", "--quiet", "origin", &refspec],
                RunOptions {
                    remote: Some(self.repo.clone()),
                    timeout: Some(Duration::from_secs(300)),
                    ..self.options()
                },
            )
            .await
            .map(|_| ())
    }
}

/// An entry of `GIT_ALTERNATE_OBJECT_DIRECTORIES`: quoted (C style) when it holds the
/// separator or a quote, as git reads it.
fn quote_alternate(path: &str) -> String {
    if !path.contains([':', '"', '\\']) {
        return path.to_string();
    }
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Parses `git cat-file --batch` output for commits.
fn parse_batch(mut out: &[u8]) -> Option<Vec<CommitInfo>> {
    let mut infos = Vec::new();
    while !out.is_empty() {
        let header_end = out.iter().position(|&b| b == b'\n')?;
        let header = std::str::from_utf8(&out[..header_end]).ok()?;
        let mut parts = header.split(' ');
        let (sha, kind, size) = (parts.next()?, parts.next()?, parts.next()?);
        if kind != "commit" {
            return None;
        }
        let size: usize = size.parse().ok()?;
        let body = out.get(header_end + 1..header_end + 1 + size)?;
        infos.push(parse_commit(sha, body)?);
        out = out.get(header_end + 1 + size + 1..)?;
    }
    Some(infos)
}

fn parse_commit(sha: &str, body: &[u8]) -> Option<CommitInfo> {
    let split = body.windows(2).position(|w| w == b"\n\n")?;
    let headers = std::str::from_utf8(&body[..split]).ok()?;
    let message = body[split + 2..].to_vec();
    let mut parent = None;
    let mut author = None;
    for line in headers.lines() {
        if let Some(p) = line.strip_prefix("parent ") {
            parent.get_or_insert_with(|| p.to_string());
        } else if let Some(a) = line.strip_prefix("author ") {
            author = Some(a);
        }
    }
    // `Name <email> 1700000000 +0000`
    let author = author?;
    let open = author.find(" <")?;
    let close = author[open..].find("> ")? + open;
    Some(CommitInfo {
        sha: sha.to_string(),
        parent,
        author_name: author[..open].to_string(),
        author_email: author[open + 2..close].to_string(),
        author_date: author[close + 2..].to_string(),
        message,
    })
}

/// The environment that makes git in a sandbox write the objects it creates (`add`,
/// `commit`, `rebase`) into the repository's mirror, where every sandbox of this worker
/// reads them (each has the mirror as its alternate). The sandbox's own store stays
/// readable. This relies on auto-gc being off (the worker's git config, see
/// [`crate::git`]): a gc started from a sandbox would see only the sandbox's refs and must
/// never prune the mirror. Jailed, such a call may write the mirror's `objects/` (the rest
/// of the mirror stays read-only to it).
pub(crate) fn shared_objects(manager: &SandboxManager, sandbox: &Sandbox) -> RunOptions {
    if sandbox.shallow {
        // A shallow copy was not cloned with the mirror as its alternate: its objects stay
        // its own, and it pushes by itself.
        return RunOptions::default();
    }
    let mirror_objects = manager.mirrors().path(&sandbox.repo).join("objects");
    let own = sandbox.objects();
    RunOptions {
        sees: Sees::default().and_read_write(&mirror_objects),
        env: vec![
            (
                OsString::from("GIT_OBJECT_DIRECTORY"),
                mirror_objects.into_os_string(),
            ),
            (
                OsString::from("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
                OsString::from(quote_alternate(&own.to_string_lossy())),
            ),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cat_file_batch_output() {
        let c1 = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent aaaa\nparent bbbb\nauthor A B <a@b.c> 1700000000 +0100\ncommitter C <c@d> 1700000001 +0000\n\nSubject\n\nGitfleet-Job: 01J\n";
        let c2 = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor gitfleet <gitfleet@localhost> 1 +0000\ncommitter C <c@d> 1 +0000\n\nroot\n";
        let mut out = Vec::new();
        out.extend_from_slice(format!("1111 commit {}\n", c1.len()).as_bytes());
        out.extend_from_slice(c1);
        out.push(b'\n');
        out.extend_from_slice(format!("2222 commit {}\n", c2.len()).as_bytes());
        out.extend_from_slice(c2);
        out.push(b'\n');
        let infos = parse_batch(&out).expect("parsed");
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].sha, "1111");
        assert_eq!(infos[0].parent.as_deref(), Some("aaaa"));
        assert_eq!(infos[0].author_name, "A B");
        assert_eq!(infos[0].author_email, "a@b.c");
        assert_eq!(infos[0].author_date, "1700000000 +0100");
        assert_eq!(infos[0].message, b"Subject\n\nGitfleet-Job: 01J\n");
        assert_eq!(infos[1].parent, None);
        assert_eq!(infos[1].message, b"root\n");
    }

    #[test]
    fn refuses_other_objects_and_short_output() {
        assert!(parse_batch(b"1111 blob 3\nabc\n").is_none());
        assert!(parse_batch(b"1111 commit 99\nabc\n").is_none());
        assert!(parse_batch(b"1111 missing\n").is_none());
    }

    #[test]
    fn quotes_alternates_only_when_needed() {
        assert_eq!(quote_alternate("/a/b"), "/a/b");
        assert_eq!(quote_alternate("/a:b"), "\"/a:b\"");
        assert_eq!(quote_alternate("/a\"b"), "\"/a\\\"b\"");
    }
}
