//! The git steps of a job's run: each git command a worker ran for it, in order, with how
//! long it took and how it ended, kept with the run in the record for the dashboard's job
//! detail (where a slow job spent its time).
//!
//! A step names its git subcommand only, from a fixed list ([`GitCommand`]; anything else is
//! `other`), never an argument: URLs, branch names, paths and tokens cannot reach a step, so
//! a step needs no redaction.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The steps a run records at most; later ones are only counted ([`GitSteps::dropped`]).
/// A push that retries a few times runs some 30 git commands; 200 keeps any real job whole
/// and a run's steps under about 16 KiB of JSON.
pub const MAX_GIT_STEPS: usize = 200;

/// The git commands a step can name. Every other subcommand (and a call without one) is
/// `other`: the list is what may appear, so nothing a job sent can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GitCommand {
    Add,
    Am,
    Apply,
    Branch,
    CatFile,
    CheckAttr,
    CheckIgnore,
    CheckRefFormat,
    Checkout,
    CherryPick,
    Clean,
    Clone,
    Commit,
    CommitGraph,
    CommitTree,
    Config,
    CountObjects,
    Diff,
    DiffFiles,
    DiffIndex,
    DiffTree,
    Fetch,
    ForEachRef,
    Fsck,
    Gc,
    HashObject,
    IndexPack,
    Init,
    Log,
    LsFiles,
    LsRemote,
    LsTree,
    Maintenance,
    Merge,
    MergeBase,
    MergeTree,
    Mktree,
    MultiPackIndex,
    PackObjects,
    PackRefs,
    Prune,
    Pull,
    Push,
    ReadTree,
    Rebase,
    Reflog,
    Remote,
    Repack,
    Reset,
    Restore,
    RevList,
    RevParse,
    Rm,
    Show,
    ShowRef,
    SparseCheckout,
    Stash,
    Status,
    Switch,
    SymbolicRef,
    Tag,
    UpdateIndex,
    UpdateRef,
    Version,
    Worktree,
    WriteTree,
    /// Any subcommand not named above, or none.
    #[serde(other)]
    Other,
}

impl GitCommand {
    /// The command of a git call whose subcommand is `sub` (`None`: the call names none).
    pub fn of(sub: Option<&str>) -> Self {
        use GitCommand::*;
        match sub.unwrap_or("") {
            "add" => Add,
            "am" => Am,
            "apply" => Apply,
            "branch" => Branch,
            "cat-file" => CatFile,
            "check-attr" => CheckAttr,
            "check-ignore" => CheckIgnore,
            "check-ref-format" => CheckRefFormat,
            "checkout" => Checkout,
            "cherry-pick" => CherryPick,
            "clean" => Clean,
            "clone" => Clone,
            "commit" => Commit,
            "commit-graph" => CommitGraph,
            "commit-tree" => CommitTree,
            "config" => Config,
            "count-objects" => CountObjects,
            "diff" => Diff,
            "diff-files" => DiffFiles,
            "diff-index" => DiffIndex,
            "diff-tree" => DiffTree,
            "fetch" => Fetch,
            "for-each-ref" => ForEachRef,
            "fsck" => Fsck,
            "gc" => Gc,
            "hash-object" => HashObject,
            "index-pack" => IndexPack,
            "init" => Init,
            "log" => Log,
            "ls-files" => LsFiles,
            "ls-remote" => LsRemote,
            "ls-tree" => LsTree,
            "maintenance" => Maintenance,
            "merge" => Merge,
            "merge-base" => MergeBase,
            "merge-tree" => MergeTree,
            "mktree" => Mktree,
            "multi-pack-index" => MultiPackIndex,
            "pack-objects" => PackObjects,
            "pack-refs" => PackRefs,
            "prune" => Prune,
            "pull" => Pull,
            "push" => Push,
            "read-tree" => ReadTree,
            "rebase" => Rebase,
            "reflog" => Reflog,
            "remote" => Remote,
            "repack" => Repack,
            "reset" => Reset,
            "restore" => Restore,
            "rev-list" => RevList,
            "rev-parse" => RevParse,
            "rm" => Rm,
            "show" => Show,
            "show-ref" => ShowRef,
            "sparse-checkout" => SparseCheckout,
            "stash" => Stash,
            "status" => Status,
            "switch" => Switch,
            "symbolic-ref" => SymbolicRef,
            "tag" => Tag,
            "update-index" => UpdateIndex,
            "update-ref" => UpdateRef,
            "version" => Version,
            "worktree" => Worktree,
            "write-tree" => WriteTree,
            _ => Other,
        }
    }
}

/// Which part of the worker ran a step for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// The op itself, in the job's sandbox (status, add, commit, diff, …).
    #[default]
    Op,
    /// Making, recycling or releasing the job's sandbox (the pool and the cache of released
    /// copies: `clone --shared`, `checkout -f -B`, `clean`, …).
    Sandbox,
    /// Bringing the worker's mirror of the repository up to date for the job (`ls-remote`,
    /// `fetch`, reading its refs). Only the job that ran it records it: a job that found the
    /// mirror fresh, or waited for another's fetch, records nothing for it.
    Mirror,
    /// The group commit's work in the mirror for the batch this job's push was in (replay,
    /// `push`): shared by every job of the batch, and recorded by each.
    PushGroup,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status (in `code`). Some calls expect one (`merge-base
    /// --is-ancestor` answers 1 for no).
    Exit,
    /// Over the worker's time limit for one git process; its process group was killed.
    Timeout,
    /// Killed by a signal (its number in `code`).
    Killed,
    /// The job stopped waiting for it (the op's time limit, or the worker cut the job off);
    /// its process group was killed.
    Cancelled,
    /// The runner did not get an answer from git: the call was refused before it started
    /// (the egress check), git could not start, or its jail could not be set up.
    Error,
}

/// One git command a run ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GitStep {
    pub command: GitCommand,
    pub phase: StepPhase,
    /// When it began, in ms after the run began.
    pub at_ms: u64,
    /// How long it took, in ms (the egress check included).
    pub ms: u64,
    pub outcome: StepOutcome,
    /// The exit status (`exit`) or the signal (`killed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

/// The git steps of one run, in the order they began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GitSteps {
    /// At most [`MAX_GIT_STEPS`].
    pub steps: Vec<GitStep>,
    /// Steps past [`MAX_GIT_STEPS`]: counted, not kept.
    #[serde(default)]
    pub dropped: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_named_only_from_the_list() {
        assert_eq!(GitCommand::of(Some("ls-remote")), GitCommand::LsRemote);
        assert_eq!(GitCommand::of(Some("push")), GitCommand::Push);
        assert_eq!(GitCommand::of(None), GitCommand::Other);
        for odd in ["https://user:tok@host/r.git", "agent-branch", "--", "PUSH"] {
            assert_eq!(GitCommand::of(Some(odd)), GitCommand::Other, "{odd}");
        }
        // Every name on the list reads back as itself, and an unknown stored one as `other`.
        let all = serde_json::to_value(GitCommand::MultiPackIndex).expect("plain");
        assert_eq!(all, "multi-pack-index");
        assert_eq!(GitCommand::of(all.as_str()), GitCommand::MultiPackIndex);
        let read: GitCommand = serde_json::from_str("\"frobnicate\"").expect("other");
        assert_eq!(read, GitCommand::Other);
    }
}
