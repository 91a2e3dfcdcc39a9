//! How a worker runs git and keeps sandboxes, as the binaries configure it, and the one
//! place that wires git and a worker's sandboxes together from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_contract::config::{ConfigError, parse_var, secs_var, var};
use gitfleet_contract::egress::{ALLOW_HOSTS_VAR, HOSTS_VAR};
use gitfleet_contract::{Credentials, EgressPolicy, JobError, PlainHttp};

use super::{SandboxConfig, SandboxLimits, SandboxManager};
use crate::git::{EgressConfig, Git, GitConfig, JailMode};

/// How a worker runs git and keeps sandboxes.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// `GITFLEET_SANDBOX_ROOT`, default `<temp dir>/gitfleet/<worker id>`: mirrors, sandboxes
    /// and git's controlled HOME live under it.
    pub sandbox_root: Option<PathBuf>,
    /// `GITFLEET_GIT_ALLOW_FILE`, default false: allow `file://` repositories (tests, demo).
    pub allow_file_protocol: bool,
    /// `GITFLEET_GIT_TIMEOUT_SECS`, default 300: time limit of one git process.
    pub timeout: Duration,
    /// `GITFLEET_POOL_MIN` (default 2) and `GITFLEET_POOL_MAX` (default 16).
    pub pool_min: usize,
    pub pool_max: usize,
    /// `GITFLEET_GIT_CREDENTIALS`, default none: comma- or whitespace-separated
    /// `https://HOST[:PORT][/PATH-PREFIX]=USER:TOKEN[;orgs=ORG|ORG]` entries (see
    /// [`Credentials::parse`]; the old `HOST[:PORT]=USER:TOKEN` form is read as
    /// `https://HOST[:PORT]`, with a warning). `http://` prefixes only with
    /// `GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS=true` (default false; for tests against loopback
    /// http git servers, never production). `;orgs=`: only those organizations' jobs use it (see
    /// [`Credential::orgs`](gitfleet_contract::Credential::orgs)). Never printed.
    pub credentials: Credentials,
    /// `GITFLEET_SANDBOX_MAX_BYTES` (default 2 GiB), `GITFLEET_SANDBOX_MAX_FILES` (200,000),
    /// `GITFLEET_MAX_BLOB_BYTES` (100 MiB): what one sandbox may hold ([`SandboxLimits`]).
    pub limits: SandboxLimits,
    /// `GITFLEET_SANDBOX_JAIL`, `off`, `bwrap` or `auto` (the default): whether every git
    /// process runs in a bubblewrap jail that sees only its sandbox, the mirror it borrows
    /// from, git's own files and a private /tmp (`crate::git`'s `jail` module). `auto` jails
    /// where `bwrap` is found and works (checked once at startup) and otherwise logs
    /// `running git unjailed: …`; `bwrap` makes a machine where it does not work a startup
    /// error; `off` logs that git runs unjailed.
    pub jail: JailMode,
    /// `GITFLEET_GIT_ALLOW_HOSTS`, default none: host names, IP addresses and CIDRs whose
    /// internal addresses git may reach anyway (tests, the demo, a fleet's own git server);
    /// every other loopback, private, link-local, unique-local, multicast or metadata
    /// address is refused. `GITFLEET_GIT_HOSTS`, default any: the only hosts git may reach
    /// at all. See [`EgressPolicy`].
    pub egress: EgressConfig,
}

impl GitSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let http = if parse_var("GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS", false)? {
            PlainHttp::Allowed
        } else {
            PlainHttp::Refused
        };
        let credentials = match var("GITFLEET_GIT_CREDENTIALS") {
            Some(list) => read_credentials(&list, http)?,
            None => Credentials::default(),
        };
        let mut policy = EgressPolicy::default();
        if let Some(list) = var(ALLOW_HOSTS_VAR) {
            policy = policy
                .allowing(&list)
                .map_err(|e| ConfigError::new(ALLOW_HOSTS_VAR, e.to_string()))?;
        }
        if let Some(list) = var(HOSTS_VAR) {
            policy = policy
                .only_hosts(&list)
                .map_err(|e| ConfigError::new(HOSTS_VAR, e.to_string()))?;
        }
        if !policy.is_default() {
            tracing::info!(egress = %policy, "git egress policy");
        }
        Ok(Self {
            sandbox_root: var("GITFLEET_SANDBOX_ROOT").map(Into::into),
            allow_file_protocol: parse_var("GITFLEET_GIT_ALLOW_FILE", false)?,
            timeout: secs_var("GITFLEET_GIT_TIMEOUT_SECS", Duration::from_secs(300))?,
            pool_min: parse_var("GITFLEET_POOL_MIN", 2)?,
            pool_max: parse_var("GITFLEET_POOL_MAX", 16)?,
            credentials,
            limits: SandboxLimits::from_env()?,
            jail: parse_var("GITFLEET_SANDBOX_JAIL", JailMode::Auto)?,
            egress: EgressConfig {
                policy,
                ..EgressConfig::default()
            },
        })
    }

    /// The directory every worker of this machine keeps its root under (`<root>/<worker
    /// id>`), and the record writer its spool (`<root>/spool`).
    pub fn base_root(&self) -> PathBuf {
        self.sandbox_root
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("gitfleet"))
    }

    /// Sets up git and the sandboxes of worker `worker_id`.
    pub async fn sandboxes(&self, worker_id: &str) -> Result<Arc<SandboxManager>, JobError> {
        let root = self.base_root().join(worker_id);
        let git = Git::new(GitConfig {
            git_bin: "git".into(),
            home: root.join("home"),
            allow_file_protocol: self.allow_file_protocol,
            timeout: self.timeout,
            max_output: 4 << 20,
            credentials: self.credentials.clone(),
            jail: self.jail,
            bwrap_bin: "bwrap".into(),
            egress: self.egress.clone(),
        })
        .await?;
        let mut config = SandboxConfig::new(root);
        config.pool_min = self.pool_min;
        config.pool_max = self.pool_max.max(self.pool_min);
        config.allow_file_protocol = self.allow_file_protocol;
        config.limits = self.limits;
        SandboxManager::new(worker_id, git, config).await
    }
}

/// Parses `GITFLEET_GIT_CREDENTIALS` and warns (once, at startup) about what is allowed but
/// weaker than it looks: entries in the old form, `http://` prefixes. No message shows a token or a user.
fn read_credentials(list: &str, http: PlainHttp) -> Result<Credentials, ConfigError> {
    const VAR: &str = "GITFLEET_GIT_CREDENTIALS";
    let parsed = Credentials::parse(list, http)
        .map_err(|e| ConfigError::new(VAR, format!("{e} (values not shown)")))?;
    for (position, prefix) in &parsed.legacy {
        tracing::warn!(
            entry = position,
            prefix = %prefix,
            "{VAR}: entry {position} is in the old host[:port]=user:token form, read as \
             {prefix}; write the https:// prefix"
        );
    }
    for (index, (prefix, _)) in parsed.credentials.iter().enumerate() {
        let position = index + 1;
        if prefix.scheme() == "http" {
            tracing::warn!(
                entry = position,
                prefix = %prefix,
                "{VAR}: entry {position} sends its token over plain http to {prefix} \
                 (GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS is on: tests only)"
            );
        }
    }
    Ok(parsed.credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_credentials_entry_is_named_by_position_and_its_token_is_not_shown() {
        let err = read_credentials(
            "https://ok.example=u:tok-1 http://h=u:tok-SECRET",
            PlainHttp::Refused,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("GITFLEET_GIT_CREDENTIALS: entry 2: an http:// prefix is refused"),
            "{text}"
        );
        assert!(!text.contains("tok-"), "{text}");
        let ok = read_credentials("h:8443=u:tok-1", PlainHttp::Refused).unwrap();
        assert_eq!(ok.iter().next().unwrap().0.to_string(), "https://h:8443");
    }
}
