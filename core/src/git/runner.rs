//! The one git runner. Every git process of the fleet starts here, so the hardening is in
//! one place: the `-c` flags that a repository's own config cannot override, the scrubbed
//! environment (pointing git at the controlled HOME of [`super::home`]), the bubblewrap
//! jail of `jail.rs` where it works, the egress check and pin of every network call
//! ([`super::egress`]; a call that names no remote may use no network transport at all),
//! the time limit that kills the whole process group, the output caps and the redaction of
//! what git says.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use gitfleet_contract::redact::basic_auth_value;
use gitfleet_contract::rules::RepoUrl;
use gitfleet_contract::steps::StepOutcome;
use gitfleet_contract::{ErrorKind, JobError, Redactor};

use super::capture::{Capture, drain, feed};
use super::classify::{classify, failure_message, limit_server_text, subcommand};
use super::config::{GitConfig, JailMode, file_protocol_policy};
use super::egress::{Egress, Route};
use super::home::prepare_home;
use super::jail::{Jail, Sees};
use super::steps::StepTimer;

/// PATH for git when the worker's own process has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long pipes may stay open after git itself exited and its group was killed (only a
/// descendant that left the group can hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// Time limit for the `git --version` check in [`Git::new`].
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the default timeout.
    pub timeout: Option<Duration>,
    /// Bytes written to the process's stdin.
    pub stdin: Option<Vec<u8>>,
    /// The remote this call talks to (the URL git is given, or its `origin`'s). Its host is
    /// checked by the egress policy and git is pinned to the checked addresses; only its
    /// transport is allowed in the call; the token of the credential that serves it (its
    /// prefix covers the URL and its `;orgs=` admits the repository's `org`), if any, is
    /// passed to git (scoped to that prefix) through `GIT_CONFIG_*` variables. Without it,
    /// git may use no network transport (only local repositories).
    pub remote: Option<RepoUrl>,
    /// Return a non-zero exit as `Ok` (with its status) instead of an error.
    pub allow_failure: bool,
    /// Extra environment variables (names must not start with `GIT_CONFIG`).
    pub env: Vec<(OsString, OsString)>,
    /// Return stdout cut at `max_output` as `Ok` (flagged in [`GitOutput::truncated`]) for
    /// output that is shown, not parsed (diff's text). Without it a cut stdout is an
    /// `internal` error naming the command: a parser must never read part of a listing
    /// as the whole of it.
    pub allow_truncated: bool,
    /// What the call may see when it runs jailed, besides git's own files and its working
    /// directory (the default: nothing more).
    pub sees: Sees,
}

/// What a git process produced.
#[derive(Debug, Clone)]
pub struct GitOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    /// Redacted.
    pub stderr: String,
    /// Stdout past `max_output` was discarded, or stdout was cut short when git exited (only
    /// with [`RunOptions::allow_truncated`]; otherwise that is an error). A cut stderr keeps
    /// a marker in its text instead.
    pub truncated: bool,
}

impl GitOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The runner. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Git {
    config: Arc<GitConfig>,
    prepared: Arc<Prepared>,
}

/// What [`Git::new`] works out once for every run.
#[derive(Debug)]
struct Prepared {
    redactor: Redactor,
    /// The `-c` flags put before the argv of a call that names no remote (no network
    /// transport allowed).
    flags: Vec<String>,
    /// The environment every git process gets (before per-call additions).
    env: Vec<(OsString, OsString)>,
    /// Where git runs jailed; `None`: unjailed.
    jail: Option<Jail>,
    /// `GIT_SSH_COMMAND` (in `env`), which a call over ssh extends with its pin.
    ssh: String,
    egress: Egress,
    version: String,
}

impl Git {
    /// Prepares HOME (the controlled global config), sets up the jail as
    /// [`GitConfig::jail`] says, and checks the git binary runs (in the jail: that is the
    /// check that bubblewrap works here). [`JailMode::Auto`] falls back to running git
    /// unjailed, with a warning, when bubblewrap is missing or does not work;
    /// [`JailMode::Bwrap`] fails instead.
    pub async fn new(config: GitConfig) -> Result<Self, JobError> {
        prepare_home(&config).await?;
        let mode = config.jail;
        let jail = match mode {
            JailMode::Off => {
                tracing::warn!(
                    "running git unjailed: the jail is off (GITFLEET_SANDBOX_JAIL=off); git \
                     sees everything this worker can read"
                );
                None
            }
            JailMode::Auto | JailMode::Bwrap => match Jail::new(&config).await {
                Ok(jail) => Some(jail),
                Err(why) => {
                    let why = format!("bubblewrap cannot be used: {why}");
                    if mode == JailMode::Bwrap {
                        return Err(JobError::internal(format!(
                            "git jail: GITFLEET_SANDBOX_JAIL=bwrap, but {why}"
                        )));
                    }
                    tracing::warn!("running git unjailed: {why}");
                    None
                }
            },
        };
        let prepared = Prepared {
            redactor: Redactor::new(&config.credentials),
            flags: hardening_flags(config.allow_file_protocol, None),
            env: base_env(&config),
            jail,
            ssh: ssh_command(&config),
            egress: Egress::new(config.egress.clone()),
            version: String::new(),
        };
        let mut git = Self {
            config: Arc::new(config),
            prepared: Arc::new(prepared),
        };
        let out = match git.version_check().await {
            Ok(out) => out,
            Err(e) if git.jailed() => {
                let bwrap = git
                    .prepared
                    .jail
                    .as_ref()
                    .map(|j| j.bwrap().display().to_string());
                let why = format!(
                    "git does not run in the jail ({} failed: {})",
                    bwrap.unwrap_or_default(),
                    e.message
                );
                if mode == JailMode::Bwrap {
                    return Err(JobError::internal(format!(
                        "git jail: GITFLEET_SANDBOX_JAIL=bwrap, but {why}"
                    )));
                }
                tracing::warn!("running git unjailed: {why}");
                Arc::get_mut(&mut git.prepared)
                    .expect("not shared yet")
                    .jail = None;
                git.version_check().await?
            }
            Err(e) => return Err(e),
        };
        let version = out.stdout_str().trim().to_string();
        if !version.starts_with("git version ") {
            let bin = git.config.git_bin.display();
            return Err(JobError::internal(format!(
                "git: `{bin} --version` printed {version:?}, not a git version"
            )));
        }
        Arc::get_mut(&mut git.prepared)
            .expect("not shared yet")
            .version = version;
        if let Some(jail) = &git.prepared.jail {
            tracing::info!(bwrap = %jail.bwrap().display(), "git runs jailed (bubblewrap)");
        }
        Ok(git)
    }

    /// `git --version`, in HOME.
    async fn version_check(&self) -> Result<GitOutput, JobError> {
        let bin = self.config.git_bin.display().to_string();
        self.run(
            &self.config.home,
            &["--version"],
            RunOptions {
                timeout: Some(VERSION_TIMEOUT),
                ..RunOptions::default()
            },
        )
        .await
        .map_err(|e| JobError::internal(format!("git: `{bin} --version` failed: {}", e.message)))
    }

    /// Whether git runs in the bubblewrap jail (`jail.rs`).
    pub fn jailed(&self) -> bool {
        self.prepared.jail.is_some()
    }

    pub fn config(&self) -> &GitConfig {
        &self.config
    }

    /// The redaction every message about git output must pass, for callers that report git's
    /// stdout or build messages of their own.
    pub fn redactor(&self) -> &Redactor {
        &self.prepared.redactor
    }

    /// The egress check [`Git::run`] makes before a call to `remote`, on its own (for tools
    /// and benchmarks): `Ok` when git may reach it, with the config that would pin git to
    /// the checked addresses built too; the refusal `run` would give otherwise.
    pub async fn check_remote(&self, remote: &str) -> Result<(), JobError> {
        if let Some(route) = self.prepared.egress.route(remote).await? {
            std::hint::black_box(route.git_config());
        }
        Ok(())
    }

    /// What `git --version` printed, e.g. `git version 2.47.3`.
    pub fn version(&self) -> &str {
        &self.prepared.version
    }

    /// Runs `git <hardening -c flags> <args>` in `cwd`. A failure is classified into an
    /// error kind (auth, network, timeout, invalid_input, conflict, internal) with a redacted
    /// message that names the git command.
    ///
    /// Within a recorded run ([`super::steps`]) the call is one of its git steps: its
    /// subcommand (from the fixed list), how long it took and how it ended.
    pub async fn run(
        &self,
        cwd: &Path,
        args: &[&str],
        options: RunOptions,
    ) -> Result<GitOutput, JobError> {
        let sub = subcommand(args);
        let timer = StepTimer::start(sub);
        let mut ended = (StepOutcome::Error, None);
        let result = self.run_process(cwd, args, options, sub, &mut ended).await;
        timer.finish(ended.0, ended.1);
        result
    }

    /// [`Git::run`], telling `ended` how git ended (left `error` when git gave no answer).
    async fn run_process(
        &self,
        cwd: &Path,
        args: &[&str],
        options: RunOptions,
        sub: Option<&str>,
        ended: &mut (StepOutcome, Option<i32>),
    ) -> Result<GitOutput, JobError> {
        let what = sub.map_or_else(|| "git".to_string(), |s| format!("git {s}"));
        check_extra_env(&options.env)?;
        let limit = options.timeout.unwrap_or(self.config.timeout);
        // Before anything starts: is the remote's host one git may reach, and where.
        let route = match &options.remote {
            Some(remote) => self.prepared.egress.route(&remote.url).await?,
            None => None,
        };
        let network_flags;
        let flags = match &route {
            Some(route) => {
                network_flags =
                    hardening_flags(self.config.allow_file_protocol, Some(route.scheme()));
                &network_flags
            }
            None => &self.prepared.flags,
        };

        let mut command = match &self.prepared.jail {
            Some(jail) => {
                // bwrap would start and then fail on it; say it as unjailed git would.
                if !cwd.is_dir() {
                    return Err(JobError::internal(format!(
                        "{what}: the working directory {} does not exist",
                        cwd.display()
                    )));
                }
                jail.command(cwd, &options.sees)?
            }
            None => tokio::process::Command::new(&self.config.git_bin),
        };
        command
            .args(flags)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(self.prepared.env.iter().map(|(k, v)| (k, v)))
            .envs(self.remote_env(options.remote.as_ref(), route.as_ref()))
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(if options.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill git and every helper it started
            // (remote-https, ssh, index-pack) at once.
            .process_group(0)
            .kill_on_drop(true);

        let started = std::time::Instant::now();
        let mut child = command.spawn().map_err(|e| {
            if !cwd.is_dir() {
                JobError::internal(format!(
                    "{what}: the working directory {} does not exist",
                    cwd.display()
                ))
            } else {
                JobError::internal(format!(
                    "{what}: cannot start {}: {e}",
                    self.config.git_bin.display()
                ))
            }
        })?;
        let mut group = ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()));

        let mut out = Capture::head(self.config.max_output);
        let mut err = Capture::head_and_tail(self.config.max_output);
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let deadline = tokio::time::Instant::now() + limit;

        // Set when a pipe was still open after git exited and its group was killed: what
        // was read is returned, flagged as incomplete.
        let mut io_cut = false;
        let waited = {
            let io = async {
                tokio::join!(
                    feed(stdin, options.stdin),
                    drain(stdout, &mut out),
                    drain(stderr, &mut err)
                );
            };
            tokio::pin!(io);
            let mut io_done = false;
            let waited = loop {
                tokio::select! {
                    waited = tokio::time::timeout_at(deadline, child.wait()) => break waited,
                    () = &mut io, if !io_done => io_done = true,
                }
            };
            if let Ok(Ok(_)) = waited {
                // git has exited; anything left in its group is an orphan.
                group.kill();
                if !io_done {
                    io_cut = tokio::time::timeout(PIPE_GRACE, &mut io).await.is_err();
                }
            }
            waited
        };

        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = match waited {
            Err(_elapsed) => {
                *ended = (StepOutcome::Timeout, None);
                tracing::debug!(command = %what, ms, "git timed out");
                // Kill the group while git is still unreaped, so its id cannot be reused.
                group.kill();
                let _ = child.kill().await;
                return Err(JobError::timeout(format!(
                    "{what} timed out after {limit:?} (its process group was killed)"
                )));
            }
            Ok(Err(e)) => {
                group.kill();
                return Err(JobError::internal(format!(
                    "{what}: waiting for git failed: {e}"
                )));
            }
            Ok(Ok(status)) => status,
        };
        *ended = match status.signal() {
            Some(signal) => (StepOutcome::Killed, Some(signal)),
            None if status.success() => (StepOutcome::Ok, None),
            None => (StepOutcome::Exit, Some(exit_code(status))),
        };

        tracing::debug!(command = %what, ms, status = exit_code(status), "git finished");
        let truncated = io_cut || out.truncated();
        let said = self
            .prepared
            .redactor
            .redact(&String::from_utf8_lossy(&err.into_bytes()));
        // What a server said (`remote:` lines) is kept only as its host's verdict allows,
        // and capped; the kind is still read from all of it.
        let stderr = match &route {
            Some(route) => limit_server_text(&said, route.server_text),
            None => said.clone(),
        };
        let output = GitOutput {
            status: exit_code(status),
            stdout: out.into_bytes(),
            stderr,
            truncated,
        };
        // bwrap's own failures (exit 1, `bwrap: …`) are never git's answer, even to a call
        // that reads git's exit status.
        if self.jailed() && output.status == 1 && output.stderr.starts_with("bwrap: ") {
            *ended = (StepOutcome::Error, None);
            return Err(JobError::internal(format!(
                "{what}: the git jail could not be set up: {}",
                output.stderr.trim()
            )));
        }
        if status.success() || options.allow_failure {
            if output.truncated && !options.allow_truncated {
                return Err(JobError::internal(format!(
                    "{what}: its output was cut at {} bytes (the runner's max_output); not read as if whole",
                    self.config.max_output
                )));
            }
            return Ok(output);
        }
        let exit = match status.signal() {
            Some(signal) => format!("killed by signal {signal}"),
            None => format!("exit status {}", output.status),
        };
        let kind = if status.signal().is_some() {
            ErrorKind::Internal
        } else {
            classify(&said)
        };
        Err(JobError::new(
            kind,
            failure_message(sub, &exit, &output.stderr),
        ))
    }

    /// The environment a call to `remote` adds: `GIT_CONFIG_*` variables with the egress
    /// pin of its `route` and its credential (see [`Git::credential_config`]), and for ssh the
    /// ssh command with the pin.
    fn remote_env(
        &self,
        remote: Option<&RepoUrl>,
        route: Option<&Route>,
    ) -> Vec<(OsString, OsString)> {
        let mut config = route.map(Route::git_config).unwrap_or_default();
        config.extend(remote.and_then(|r| self.credential_config(r)));
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        if !config.is_empty() {
            env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string().into()));
        }
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}").into(), key.into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}").into(), value.into()));
        }
        if let Some(options) = route.and_then(Route::ssh_options) {
            env.push((
                "GIT_SSH_COMMAND".into(),
                format!("{}{options}", self.prepared.ssh).into(),
            ));
        }
        env
    }

    /// The config carrying the token for `remote`, if a credential serves it
    /// ([`Credentials::for_url`](gitfleet_contract::Credentials::for_url): https only, the
    /// exact host and port, a path under the prefix, an organization its `;orgs=` admits):
    /// an `Authorization` header scoped to that prefix, so git adds it only to requests
    /// under it. Passed in `GIT_CONFIG_*` variables: never argv (visible in `ps`), never the
    /// URL (echoed in git's messages and stored in `.git/config`).
    fn credential_config(&self, url: &RepoUrl) -> Option<(String, String)> {
        let (prefix, credential) = self.config.credentials.for_url(url)?;
        let header = format!(
            "Authorization: Basic {}",
            basic_auth_value(&credential.username, credential.token())
        );
        Some((
            format!("http.{}.extraHeader", prefix.git_config_url()),
            header,
        ))
    }
}

/// Kills a process group (once) when told to or when dropped, so a cancelled run leaves
/// nothing behind.
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is already gone) is the usual, harmless outcome.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The exit code, or 128 + the signal number for a process killed by a signal (as shells
/// report it).
fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The `-c` flags put before every argv. Command-line config outranks every config file,
/// so a repository's own `.git/config` cannot switch these back on. `network` is the
/// transport of the call's checked remote, the only one allowed besides `file` (per
/// policy); a call without one may reach no network at all, so no git process can talk to a
/// host the egress check has not seen.
fn hardening_flags(allow_file: bool, network: Option<&str>) -> Vec<String> {
    let transport = |scheme: &str| {
        let allow = if network == Some(scheme) {
            "always"
        } else {
            "never"
        };
        format!("protocol.{scheme}.allow={allow}")
    };
    let settings = [
        // Nothing from the repository runs: no hooks, no fsmonitor daemon or script.
        "core.hooksPath=/dev/null".to_string(),
        "core.fsmonitor=false".to_string(),
        // Transports: an allow-list. ext:: and fd:: are named too, because a repository's
        // `protocol.ext.allow` would outrank the blanket `protocol.allow`.
        "protocol.allow=never".to_string(),
        transport("https"),
        transport("http"),
        transport("ssh"),
        transport("git"),
        format!("protocol.file.allow={}", file_protocol_policy(allow_file)),
        "protocol.ext.allow=never".to_string(),
        "protocol.fd.allow=never".to_string(),
        // No credential helper (an empty value resets the list); tokens come only from us.
        "credential.helper=".to_string(),
        "transfer.credentialsInUrl=die".to_string(),
        "submodule.recurse=false".to_string(),
        // A redirect is never followed, with or without a token: it could lead to another
        // host, port or path than the one the job named (and its credential is for).
        "http.followRedirects=false".to_string(),
        // Signing would run gpg.program, a command a repository config could name.
        "commit.gpgSign=false".to_string(),
    ];
    settings
        .into_iter()
        .flat_map(|setting| ["-c".to_string(), setting])
        .collect()
}

/// The whole environment of a git process (the parent's is cleared first). Names the
/// runner sets cannot be overridden per call (see [`check_extra_env`]).
fn base_env(config: &GitConfig) -> Vec<(OsString, OsString)> {
    // The worker's own PATH, so git finds the same helpers (ssh) the operator installed.
    let path = std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| FALLBACK_PATH.into());
    let ssh = ssh_command(config);
    let pairs: Vec<(&str, OsString)> = vec![
        ("PATH", path),
        ("HOME", config.home.clone().into_os_string()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        (
            "GIT_CONFIG_GLOBAL",
            config.global_config_path().into_os_string(),
        ),
        ("GIT_ATTR_NOSYSTEM", "1".into()),
        // Nothing may wait for a person: no terminal prompt, askpass programs that fail at
        // once, ssh in batch mode, no editor and no pager.
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("GIT_ASKPASS", "false".into()),
        ("SSH_ASKPASS", "false".into()),
        ("SSH_ASKPASS_REQUIRE", "never".into()),
        ("GIT_SSH_COMMAND", ssh.into()),
        ("GIT_EDITOR", ":".into()),
        ("GIT_SEQUENCE_EDITOR", ":".into()),
        ("GIT_PAGER", "cat".into()),
        ("PAGER", "cat".into()),
        // Set but empty: outranks a repository's `core.gitProxy` (a command) and means none.
        ("GIT_PROXY_COMMAND", "".into()),
        // Stable English messages (the classifier reads them) and stable dates.
        ("LANG", "C".into()),
        ("LC_ALL", "C".into()),
        ("TZ", "UTC".into()),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (OsString::from(k), v))
        .collect()
}

/// The ssh command git runs (`GIT_SSH_COMMAND`): batch mode, a time limit on connecting,
/// the worker's own known_hosts.
fn ssh_command(config: &GitConfig) -> String {
    let known_hosts = config.home.join(".ssh").join("known_hosts");
    format!(
        "ssh -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=accept-new \
         -o UserKnownHostsFile={}",
        shell_quote(&known_hosts.to_string_lossy())
    )
}

/// Names a caller may not set through [`RunOptions::env`]: config injection, the names the
/// runner sets itself, and the ones that would turn a protection off.
fn check_extra_env(env: &[(OsString, OsString)]) -> Result<(), JobError> {
    const DENIED: &[&str] = &[
        "PATH",
        "HOME",
        "GIT_ATTR_NOSYSTEM",
        "GIT_TERMINAL_PROMPT",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "SSH_ASKPASS_REQUIRE",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_EDITOR",
        "GIT_SEQUENCE_EDITOR",
        "GIT_PAGER",
        "PAGER",
        "GIT_PROXY_COMMAND",
        "LANG",
        "LC_ALL",
        "GIT_ALLOW_PROTOCOL",
        "GIT_PROTOCOL_FROM_USER",
        "GIT_EXEC_PATH",
        "GIT_EXTERNAL_DIFF",
        "GIT_TRACE_REDACT",
    ];
    for (name, _) in env {
        let name_str = name.to_string_lossy();
        let bad = name.is_empty()
            || name_str.contains(['=', '\0'])
            || name_str.starts_with("GIT_CONFIG")
            || name_str.starts_with("LD_")
            || DENIED.contains(&name_str.as_ref());
        if bad {
            return Err(JobError::internal(format!(
                "git: the environment variable {name_str:?} is set by the runner and cannot be \
                 overridden"
            )));
        }
    }
    Ok(())
}

/// Single-quotes `s` for the `sh -c` git runs `GIT_SSH_COMMAND` through.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardening_flags_come_in_pairs_and_cover_the_essentials() {
        let flags = hardening_flags(false, None);
        assert_eq!(flags.len() % 2, 0);
        let settings: Vec<&str> = flags
            .chunks(2)
            .map(|p| {
                assert_eq!(p[0], "-c");
                p[1].as_str()
            })
            .collect();
        for want in [
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "protocol.allow=never",
            "protocol.ext.allow=never",
            "protocol.file.allow=user",
            "http.followRedirects=false",
            // No remote named: no network transport.
            "protocol.https.allow=never",
            "protocol.http.allow=never",
            "protocol.ssh.allow=never",
            "protocol.git.allow=never",
        ] {
            assert!(settings.contains(&want), "{want}");
        }
        assert!(hardening_flags(true, None).contains(&"protocol.file.allow=always".to_string()));
        // A checked remote: its transport only.
        let https = hardening_flags(false, Some("https"));
        assert!(https.contains(&"protocol.https.allow=always".to_string()));
        for other in ["http", "ssh", "git"] {
            assert!(
                https.contains(&format!("protocol.{other}.allow=never")),
                "{other}"
            );
        }
    }

    #[test]
    fn callers_cannot_override_the_hardened_environment() {
        for name in [
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_GLOBAL",
            "HOME",
            "GIT_ASKPASS",
            "LD_PRELOAD",
            "A=B",
            "",
        ] {
            let env = vec![(OsString::from(name), OsString::from("x"))];
            assert!(check_extra_env(&env).is_err(), "{name}");
        }
        let ok = vec![
            (OsString::from("GIT_INDEX_FILE"), OsString::from("/tmp/i")),
            (OsString::from("GIT_AUTHOR_NAME"), OsString::from("a")),
        ];
        assert!(check_extra_env(&ok).is_ok());
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
