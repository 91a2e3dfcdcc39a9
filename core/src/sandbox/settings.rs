//! How a worker runs git and keeps sandboxes, as the binaries configure it, and the one
//! place that wires git and a worker's sandboxes together from it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gitfleet_contract::config::{ConfigError, parse_var, secs_var, var};
use gitfleet_contract::{Credential, Credentials, JobError};

use super::{SandboxConfig, SandboxManager};
use crate::git::{Git, GitConfig};

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
    /// `GITFLEET_GIT_CREDENTIALS`: whitespace- or comma-separated `host[:port]=user:token`.
    /// Never printed.
    pub credentials: Credentials,
}

impl GitSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut credentials = Credentials::default();
        if let Some(list) = var("GITFLEET_GIT_CREDENTIALS") {
            for entry in list
                .split([',', ' ', '\n'])
                .filter(|e| !e.trim().is_empty())
            {
                let bad = || {
                    ConfigError::new(
                        "GITFLEET_GIT_CREDENTIALS",
                        "each entry must be host[:port]=user:token (values not shown)",
                    )
                };
                let (host, secret) = entry.trim().split_once('=').ok_or_else(bad)?;
                let (user, token) = secret.split_once(':').ok_or_else(bad)?;
                if host.is_empty() || token.is_empty() {
                    return Err(bad());
                }
                credentials.insert(host, Credential::new(user, token));
            }
        }
        Ok(Self {
            sandbox_root: var("GITFLEET_SANDBOX_ROOT").map(Into::into),
            allow_file_protocol: parse_var("GITFLEET_GIT_ALLOW_FILE", false)?,
            timeout: secs_var("GITFLEET_GIT_TIMEOUT_SECS", Duration::from_secs(300))?,
            pool_min: parse_var("GITFLEET_POOL_MIN", 2)?,
            pool_max: parse_var("GITFLEET_POOL_MAX", 16)?,
            credentials,
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
        })
        .await?;
        let mut config = SandboxConfig::new(root);
        config.pool_min = self.pool_min;
        config.pool_max = self.pool_max.max(self.pool_min);
        config.allow_file_protocol = self.allow_file_protocol;
        SandboxManager::new(worker_id, git, config).await
    }
}
