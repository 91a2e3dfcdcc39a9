//! How git runs on this worker ([`GitConfig`], [`JailMode`]) and the one policy both the
//! runner's `-c` flags and the controlled global config state (`protocol.file.allow`).

use std::path::PathBuf;
use std::time::Duration;

use gitfleet_contract::Credentials;

use super::egress::EgressConfig;

/// How git is run on this worker.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// The git binary (default `git` from PATH).
    pub git_bin: PathBuf,
    /// A directory of the worker's own that becomes git's HOME; the runner writes the
    /// controlled global config there.
    pub home: PathBuf,
    /// Allow `file://` (and plain-path) remotes. Off in production; tests and the demo turn
    /// it on for local repositories.
    pub allow_file_protocol: bool,
    /// Default time limit for one git process.
    pub timeout: Duration,
    /// Most bytes kept of a process's stdout (and of its stderr); the rest is discarded.
    pub max_output: usize,
    /// Tokens by URL prefix; the runner hands one to git only for a remote its prefix covers
    /// ([`Credentials::for_url`]).
    pub credentials: Credentials,
    /// Whether git runs in a bubblewrap jail (default [`JailMode::Auto`]: where bubblewrap
    /// works; what it sees: `jail.rs`).
    pub jail: JailMode,
    /// The bubblewrap binary (default `bwrap` from PATH).
    pub bwrap_bin: PathBuf,
    /// Which hosts network git calls may reach, checked (and pinned) before each one; the
    /// default refuses every internal address ([`EgressConfig`]).
    pub egress: EgressConfig,
}

/// `GITFLEET_SANDBOX_JAIL`: whether every git process runs in a bubblewrap jail that sees
/// only its own directories (`jail.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JailMode {
    /// Jailed when bubblewrap is found and works (checked once, when the runner starts);
    /// otherwise unjailed, with a warning.
    #[default]
    Auto,
    /// Never jailed (logged as a warning when the runner starts).
    Off,
    /// Always jailed: a runner that cannot jail git does not start.
    Bwrap,
}

impl std::str::FromStr for JailMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            "bwrap" => Ok(Self::Bwrap),
            other => Err(format!("{other:?} is not one of off, bwrap, auto")),
        }
    }
}

impl std::fmt::Display for JailMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Off => "off",
            Self::Bwrap => "bwrap",
        })
    }
}

impl GitConfig {
    /// Default for [`GitConfig::timeout`]: five minutes, enough for a full clone of a large
    /// repository over a slow link; ops that should be quick pass their own limit.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default for [`GitConfig::max_output`]: 16 MiB per stream.
    pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

    /// A config with git from PATH, `file` remotes off, the default limits, no credentials,
    /// git jailed where bubblewrap works and the default egress policy (no internal
    /// address).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            git_bin: PathBuf::from("git"),
            home: home.into(),
            allow_file_protocol: false,
            timeout: Self::DEFAULT_TIMEOUT,
            max_output: Self::DEFAULT_MAX_OUTPUT,
            credentials: Credentials::default(),
            jail: JailMode::Auto,
            bwrap_bin: PathBuf::from("bwrap"),
            egress: EgressConfig::default(),
        }
    }

    /// The controlled global config file inside [`GitConfig::home`].
    pub fn global_config_path(&self) -> PathBuf {
        self.home.join(".gitconfig")
    }
}

/// `protocol.file.allow`: `always` when file remotes are allowed, otherwise `user`. `user`
/// still lets the worker clone from its own local mirrors (commands it runs itself), while
/// file transports that git starts on a repository's behalf (submodules,
/// CVE-2022-39253) stay off. Job URLs never reach git as local paths in production
/// because [`gitfleet_contract::rules::repo_url`] refuses them.
pub(super) fn file_protocol_policy(allow_file: bool) -> &'static str {
    if allow_file { "always" } else { "user" }
}
