//! The egress check before every network git call, and the pin that holds git to it.
//!
//! The runner resolves the remote's host once ([`tokio::net::lookup_host`], with a time
//! limit and a short cache), has the contract's [`EgressPolicy`] judge the name and every
//! address, and then hands git only those addresses, so there is no second resolution that
//! a DNS answer could change in between (rebinding):
//! - http(s): `http.curloptResolve` entries (`HOST:PORT:ADDR,...`, and `*:PORT:ADDR,...` for
//!   whatever spelling curl uses), so curl connects to the checked addresses while TLS and
//!   the `Host` header keep the name;
//! - git://: the URL is rewritten (`url.<by address>.insteadOf`) to the checked address;
//! - ssh: `-o HostName=ADDR -o HostKeyAlias=HOST` on the ssh command, so ssh connects to the
//!   checked address and still checks the host key under the name.
//!
//! Host literals (`https://192.0.2.1/`) need no pin. `file://` remotes are not network and
//! are not checked here (`protocol.file.allow` governs them).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitfleet_contract::egress::{Refusal, ServerText};
use gitfleet_contract::rules::{self as validate, RepoUrl};
use gitfleet_contract::{EgressPolicy, ErrorKind, JobError};

/// Longest a host's resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a host's resolved addresses are used again. Short, as a DNS TTL would be; the
/// cache only saves lookups (every use is judged again, and git gets exactly those
/// addresses, so a stale entry can only be an old address, never an unchecked one).
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most hosts cached; past it the cache starts over.
const CACHE_MAX: usize = 4096;

/// The egress settings of a worker's git.
#[derive(Debug, Clone, Default)]
pub struct EgressConfig {
    /// Which hosts git may reach (`GITFLEET_GIT_ALLOW_HOSTS`, `GITFLEET_GIT_HOSTS`). The
    /// default refuses every internal address.
    pub policy: EgressPolicy,
    /// Addresses for host names, used instead of the system resolver (as curl's `--resolve`)
    /// and judged by the policy like any others. Empty by default; tests give a name an
    /// address no resolver knows, which proves git connects to the checked address (it
    /// could not resolve the name itself).
    pub fixed_addresses: BTreeMap<String, Vec<IpAddr>>,
}

impl EgressConfig {
    /// The default policy with `list`'s allowances (a `GITFLEET_GIT_ALLOW_HOSTS` list).
    ///
    /// # Panics
    /// If `list` cannot be read: for literals in tests and tools.
    pub fn allowing(list: &str) -> Self {
        Self {
            policy: EgressPolicy::default()
                .allowing(list)
                .unwrap_or_else(|e| panic!("allow-hosts list {list:?}: {e}")),
            fixed_addresses: BTreeMap::new(),
        }
    }
}

/// Where a checked remote may connect, and how git is held to it.
#[derive(Debug, Clone)]
pub(super) struct Route {
    scheme: String,
    /// The host as the URL names it (lowercase; no brackets, no port).
    host: String,
    port: u16,
    /// The checked addresses, in the resolver's order of preference.
    addrs: Vec<IpAddr>,
    /// The host is an IP address: nothing to resolve, nothing to pin.
    literal: bool,
    /// The URL up to its path (`git://host:port`), for the git:// rewrite.
    origin: String,
    pub(super) server_text: ServerText,
}

impl Route {
    pub(super) fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The git config (keys and values, for `GIT_CONFIG_*`) that pins git to the checked
    /// addresses.
    pub(super) fn git_config(&self) -> Vec<(String, String)> {
        if self.literal {
            return Vec::new();
        }
        match self.scheme.as_str() {
            "http" | "https" => {
                let addrs: Vec<String> = self.addrs.iter().map(|a| bracketed(*a)).collect();
                let addrs = addrs.join(",");
                vec![
                    (
                        "http.curloptResolve".into(),
                        format!("{}:{}:{addrs}", self.host, self.port),
                    ),
                    // curl drops a trailing dot before it looks a name up; the wildcard (curl
                    // 7.86+) catches that and any other spelling of this one host.
                    (
                        "http.curloptResolve".into(),
                        format!("*:{}:{addrs}", self.port),
                    ),
                ]
            }
            "git" => vec![(
                format!(
                    "url.git://{}:{}/.insteadOf",
                    bracketed(self.addrs[0]),
                    self.port
                ),
                format!("{}/", self.origin),
            )],
            _ => Vec::new(),
        }
    }

    /// Options appended to the ssh command: connect to the checked address, check the host
    /// key under the name.
    pub(super) fn ssh_options(&self) -> Option<String> {
        (self.scheme == "ssh" && !self.literal).then(|| {
            format!(
                " -o HostName={} -o HostKeyAlias={}",
                self.addrs[0], self.host
            )
        })
    }
}

/// Resolved hosts: when, and to which addresses.
type Cache = HashMap<String, (Instant, Arc<[IpAddr]>)>;

/// The check itself, with its cache of resolved hosts. One per runner.
#[derive(Debug)]
pub(super) struct Egress {
    config: EgressConfig,
    cache: Mutex<Cache>,
}

impl Egress {
    pub(super) fn new(config: EgressConfig) -> Self {
        Self {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `remote` (a repository URL) and returns where git may connect for it; `None`
    /// for a `file://` remote (not network). A refusal is `invalid_input` naming the host
    /// and why; a host that cannot be resolved is `network`.
    pub(super) async fn route(&self, remote: &str) -> Result<Option<Route>, JobError> {
        let url = validate::repo_url("remote", remote, true)?;
        if url.scheme == "file" {
            return Ok(None);
        }
        let (host, port) = host_and_port(&url)?;
        let policy = &self.config.policy;
        policy.check_name(&host).map_err(refused)?;
        let (addrs, literal) = match host.parse::<IpAddr>() {
            Ok(ip) => (vec![ip], true),
            Err(_) => (self.resolve(&host, port).await?, false),
        };
        let server_text = policy.check(&host, &addrs).map_err(refused)?;
        let origin = url.url[..url.url.len() - url.path.len()].to_string();
        Ok(Some(Route {
            scheme: url.scheme,
            host,
            port,
            addrs,
            literal,
            origin,
            server_text,
        }))
    }

    /// Every address of `host`: from the fixed table, the cache, or the system resolver.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, JobError> {
        if let Some(fixed) = self.config.fixed_addresses.get(host) {
            return Ok(fixed.clone());
        }
        if let Some((at, addrs)) = self.cache.lock().expect("not poisoned").get(host)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(addrs.to_vec());
        }
        let looked = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| {
                network(format!(
                    "repo_url: resolving the host {host:?} took longer than {RESOLVE_TIMEOUT:?}"
                ))
            })?
            .map_err(|e| network(format!("repo_url: cannot resolve the host {host:?}: {e}")))?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        for addr in looked {
            if !addrs.contains(&addr.ip()) {
                addrs.push(addr.ip());
            }
        }
        if addrs.is_empty() {
            return Err(network(format!(
                "repo_url: the host {host:?} resolves to no address"
            )));
        }
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(host.to_string(), (Instant::now(), addrs.clone().into()));
        Ok(addrs)
    }
}

/// The host (no brackets, no port) and the port a URL connects to.
fn host_and_port(url: &RepoUrl) -> Result<(String, u16), JobError> {
    let name = url.hostname();
    let port = url.host[name.len()..].strip_prefix(':');
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| JobError::invalid_input(format!("repo_url: bad port {p:?}")))?,
        None => match url.scheme.as_str() {
            "https" => 443,
            "http" => 80,
            "git" => 9418,
            _ => 22,
        },
    };
    let name = name
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(name);
    Ok((name.to_string(), port))
}

fn refused(refusal: Refusal) -> JobError {
    JobError::invalid_input(format!("repo_url: {refusal}"))
}

fn network(message: String) -> JobError {
    JobError::new(ErrorKind::Network, message)
}

/// An address as it goes into a URL or a curl resolve entry (`[::1]`, `127.0.0.1`).
fn bracketed(addr: IpAddr) -> String {
    match addr {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(allow: &str, fixed: &[(&str, &str)]) -> Egress {
        let mut config = EgressConfig::allowing(allow);
        for (name, addr) in fixed {
            config
                .fixed_addresses
                .insert(name.to_string(), vec![addr.parse().unwrap()]);
        }
        Egress::new(config)
    }

    async fn route(e: &Egress, url: &str) -> Route {
        e.route(url).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn each_transport_is_pinned_to_the_checked_address() {
        let e = egress(
            "10.0.0.0/8",
            &[("git.corp", "10.1.2.3"), ("v6.corp", "fd00::7")],
        );
        let https = route(&e, "https://git.corp/org/repo.git").await;
        assert_eq!(
            https.git_config(),
            vec![
                (
                    "http.curloptResolve".to_string(),
                    "git.corp:443:10.1.2.3".to_string()
                ),
                (
                    "http.curloptResolve".to_string(),
                    "*:443:10.1.2.3".to_string()
                ),
            ]
        );
        let git = route(&e, "git://Git.Corp:9999/repo.git").await;
        assert_eq!(
            git.git_config(),
            vec![(
                "url.git://10.1.2.3:9999/.insteadOf".to_string(),
                "git://Git.Corp:9999/".to_string()
            )]
        );
        let e6 = egress("fd00::/8", &[("v6.corp", "fd00::7")]);
        let git6 = route(&e6, "git://v6.corp/repo.git").await;
        assert_eq!(
            git6.git_config()[0].0,
            "url.git://[fd00::7]:9418/.insteadOf"
        );
        let http6 = route(&e6, "http://v6.corp:8080/r").await;
        assert_eq!(http6.git_config()[0].1, "v6.corp:8080:[fd00::7]");
        let ssh = route(&e, "git@git.corp:org/repo.git").await;
        assert!(ssh.git_config().is_empty());
        assert_eq!(
            ssh.ssh_options().unwrap(),
            " -o HostName=10.1.2.3 -o HostKeyAlias=git.corp"
        );
        let ssh = route(&e, "ssh://git@git.corp:2222/org/repo.git").await;
        assert_eq!((ssh.port, ssh.host.as_str()), (2222, "git.corp"));
    }

    #[tokio::test]
    async fn an_address_literal_needs_no_pin_and_file_is_not_network() {
        let e = egress("127.0.0.1 ::1", &[]);
        let r = route(&e, "http://127.0.0.1:8080/r.git").await;
        assert!(r.git_config().is_empty() && r.ssh_options().is_none());
        let r = route(&e, "git://[::1]:9418/r.git").await;
        assert!(r.git_config().is_empty());
        assert_eq!(r.host, "::1");
        assert!(e.route("file:///srv/r.git").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refusals_are_invalid_input_and_name_the_host() {
        let e = egress("", &[("sneaky.example", "127.0.0.1")]);
        for (url, want) in [
            (
                "https://sneaky.example/r.git",
                "repo_url: the host \"sneaky.example\" resolves to a loopback address 127.0.0.1",
            ),
            (
                "http://[::1]:80/r.git",
                "repo_url: the host \"::1\" is a loopback address",
            ),
            (
                "git://169.254.169.254/r.git",
                "repo_url: the host \"169.254.169.254\" is a cloud metadata address",
            ),
            (
                "ssh://git@10.0.0.1/r.git",
                "repo_url: the host \"10.0.0.1\" is a private address",
            ),
            // Numeric spellings the C resolver reads as addresses (inet_aton): judged by
            // what they resolve to.
            (
                "http://2130706433/r.git",
                "repo_url: the host \"2130706433\" resolves to a loopback address 127.0.0.1",
            ),
            (
                "http://0x7f.1/r.git",
                "repo_url: the host \"0x7f.1\" resolves to a loopback address 127.0.0.1",
            ),
        ] {
            let err = e.route(url).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
            assert!(err.message.starts_with(want), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_network_failure() {
        let e = egress("", &[]);
        let err = e
            .route("https://no-such-host.invalid/r.git")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Network, "{err}");
        assert!(err.message.contains("\"no-such-host.invalid\""), "{err}");
    }
}
