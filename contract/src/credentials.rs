//! Tokens per host, kept out of every URL, argv, log line, payload, row and metric.

use std::collections::HashMap;
use std::fmt;

/// One host's credential. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    token: String,
}

impl Credential {
    pub fn new(username: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            token: token.into(),
        }
    }

    /// The token, for the one place that hands it to git (the runner) and for the redactor.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("token", &"***")
            .finish()
    }
}

/// Credentials by host (`host` or `host:port`).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
}

impl Credentials {
    pub fn insert(&mut self, host: impl Into<String>, credential: Credential) {
        self.by_host
            .insert(host.into().to_ascii_lowercase(), credential);
    }

    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(&host.to_ascii_lowercase())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Credential)> {
        self.by_host.iter()
    }
}
