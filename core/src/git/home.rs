//! git's HOME on a worker: a directory of its own with the controlled global config (identity,
//! the same hardening the runner's `-c` flags carry, speed and quiet settings) and an empty
//! template directory. [`Git::new`](super::Git::new) prepares it once, before any git runs;
//! the runner points every git process at it (`HOME`, `GIT_CONFIG_GLOBAL`).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

use gitfleet_contract::JobError;

use super::config::{GitConfig, file_protocol_policy};

/// Creates HOME (private to the worker) with the controlled global config and an empty
/// template directory, and writes the config atomically so workers sharing a HOME never
/// read half of it.
pub(super) async fn prepare_home(config: &GitConfig) -> Result<(), JobError> {
    let home = &config.home;
    let fail = |what: &str, e: std::io::Error| {
        JobError::internal(format!("git: cannot {what} in {}: {e}", home.display()))
    };
    if !home.is_absolute() {
        return Err(JobError::internal(format!(
            "git: HOME {} must be an absolute path",
            home.display()
        )));
    }
    let template = home.join("template");
    let ssh = home.join(".ssh");
    for dir in [home, &template, &ssh] {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| fail("create directories", e))?;
    }
    for dir in [home, &ssh] {
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(|e| fail("set permissions", e))?;
    }
    let text = global_config_text(config)?;
    let path = config.global_config_path();
    let tmp = home.join(format!(".gitconfig.tmp-{}", ulid::Ulid::new()));
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| fail("write the global config", e))?;
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(|e| fail("write the global config", e))?;
    Ok(())
}

/// The controlled global config. The `-c` flags repeat the settings that matter for safety
/// (a repository's config outranks this file); this file adds identity, speed and quiet.
fn global_config_text(config: &GitConfig) -> Result<String, JobError> {
    let template = quote_config_value(config.home.join("template").as_os_str())?;
    let file = file_protocol_policy(config.allow_file_protocol);
    let advice = [
        "addEmbeddedRepo",
        "addEmptyPathspec",
        "addIgnoredFile",
        "ambiguousFetchRefspec",
        "checkoutAmbiguousRemoteBranchName",
        "commitBeforeMerge",
        "detachedHead",
        "diverging",
        "fetchShowForcedUpdates",
        "forceDeleteBranch",
        "ignoredHook",
        "implicitIdentity",
        "mergeConflict",
        "nestedTag",
        "pushAlreadyExists",
        "pushFetchFirst",
        "pushNeedsForce",
        "pushNonFFCurrent",
        "pushNonFFMatching",
        "pushRefNeedsUpdate",
        "pushUnqualifiedRefname",
        "pushUpdateRejected",
        "resetNoRefresh",
        "resolveConflict",
        "rmHints",
        "sequencerInUse",
        "setUpstreamFailure",
        "skippedCherryPicks",
        "statusAheadBehind",
        "statusHints",
        "statusUoption",
        "submodulesNotUpdated",
        "suggestDetachingHead",
        "updateSparsePath",
        "waitingForEditor",
        "worktreeAddOrphan",
    ]
    .map(|key| format!("\t{key} = false\n"))
    .concat();
    Ok(format!(
        "\
# Written by gitfleet (core/src/git/home.rs) every time a worker starts; edits are lost.
[user]
\tname = gitfleet
\temail = gitfleet@gitfleet.invalid
[init]
\tdefaultBranch = main
\t# Empty: no sample hooks or description copied into every new repository.
\ttemplateDir = {template}
[core]
\thooksPath = /dev/null
\tfsmonitor = false
\tsymlinks = true
\tautocrlf = false
\tuntrackedCache = false
\tprotectNTFS = true
\tprotectHFS = true
\teditor = :
\tpager = cat
[protocol]
\tallow = never
\tversion = 2
[protocol \"https\"]
\tallow = always
[protocol \"http\"]
\tallow = always
[protocol \"ssh\"]
\tallow = always
[protocol \"git\"]
\tallow = always
[protocol \"file\"]
\tallow = {file}
[protocol \"ext\"]
\tallow = never
[protocol \"fd\"]
\tallow = never
[credential]
\thelper =
[transfer]
\tcredentialsInUrl = die
\t# Off: checking every received object costs CPU on every clone and fetch; checkout's
\t# own path checks (protectNTFS/HFS, no .git entries) still apply.
\tfsckObjects = false
[fetch]
\tfsckObjects = false
\trecurseSubmodules = false
\twriteCommitGraph = true
\tshowForcedUpdates = false
[submodule]
\trecurse = false
[http]
\t# Never: a redirect could lead away from the host a credential is for.
\tfollowRedirects = false
[push]
\trecurseSubmodules = no
\tgpgSign = false
[commit]
\tgpgSign = false
[tag]
\tgpgSign = false
[gc]
\tauto = 0
\tautoDetach = false
[maintenance]
\tauto = false
[rerere]
\tenabled = false
[color]
\tui = false
[advice]
{advice}"
    ))
}

/// A value for a config file, double-quoted with git's escapes.
fn quote_config_value(value: &OsStr) -> Result<String, JobError> {
    let value = value.to_str().ok_or_else(|| {
        JobError::internal("git: the HOME path must be valid UTF-8 to go into the git config")
    })?;
    if value.contains(['\n', '\0']) {
        return Err(JobError::internal(
            "git: the HOME path must not contain a newline",
        ));
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;
    use gitfleet_contract::{Credential, PlainHttp, UrlPrefix};

    #[test]
    fn the_global_config_is_valid_and_quotes_home() {
        let mut config = GitConfig::new("/tmp/odd \"home\"\\x");
        config.credentials.insert(
            UrlPrefix::parse("https://h", PlainHttp::Refused).unwrap(),
            Credential::new("u", "t"),
        );
        let text = global_config_text(&config).unwrap();
        assert!(
            text.contains("templateDir = \"/tmp/odd \\\"home\\\"\\\\x/template\""),
            "{text}"
        );
        assert!(text.contains("hooksPath = /dev/null"));
        assert!(!text.contains("\tt\n"));
        let parsed = std::process::Command::new("git")
            .args(["config", "--file", "-", "--list"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(text.as_bytes())?;
                child.wait_with_output()
            })
            .expect("run git config");
        assert!(parsed.status.success());
        let listed = String::from_utf8(parsed.stdout).unwrap();
        assert!(
            listed.contains("init.templatedir=/tmp/odd \"home\"\\x/template"),
            "{listed}"
        );
        assert!(listed.contains("protocol.file.allow=user"));
        assert!(listed.contains("advice.detachedhead=false"));
        assert!(listed.contains("http.followredirects=false"));
    }
}
