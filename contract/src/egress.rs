//! The egress policy: which hosts a worker's git may reach, as pure rules (no resolving, no
//! I/O). An address is *internal* when it is not on the public internet (loopback, private,
//! shared CGNAT, link-local, unique-local, multicast, unspecified, broadcast, reserved, a
//! cloud metadata service, and the IPv4-mapped, NAT64 and 6to4 forms of these); a host that
//! resolves to any internal address is refused unless the operator's allowances
//! (`GITFLEET_GIT_ALLOW_HOSTS`) cover it, and a fleet may restrict itself further to a list
//! of hosts (`GITFLEET_GIT_HOSTS`). The worker resolves a host once and pins git to the
//! addresses judged here (`gitfleet_core::git`), so what was checked is what git connects to.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Names or CIDRs whose internal addresses git may reach anyway.
pub const ALLOW_HOSTS_VAR: &str = "GITFLEET_GIT_ALLOW_HOSTS";
/// The only hosts git may reach at all, when set.
pub const HOSTS_VAR: &str = "GITFLEET_GIT_HOSTS";

/// Why an address is not on the public internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Internal {
    Loopback,
    /// RFC 1918 (and the deprecated IPv6 site-local range).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
    Shared,
    LinkLocal,
    /// fc00::/7 (RFC 4193).
    UniqueLocal,
    Multicast,
    /// 0.0.0.0/8 and `::`: Linux connects them to the machine itself.
    Unspecified,
    Broadcast,
    /// Not globally reachable for another reason (IETF, benchmarking, documentation, future use,
    /// IPv4-compatible IPv6).
    Reserved,
    /// A cloud provider's instance metadata service (instance credentials live there).
    Metadata,
}

impl Internal {
    /// `a loopback address`, as a refusal says it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::Shared => "a shared (CGNAT) address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique-local address",
            Self::Multicast => "a multicast address",
            Self::Unspecified => "an unspecified address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
            Self::Metadata => "a cloud metadata address",
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Internal IPv4 ranges, the most specific first (the first match names the kind).
const V4: &[(Ipv4Net, Internal)] = &[
    // AWS, GCP, Azure, Oracle, DigitalOcean...; Alibaba's inside the CGNAT range.
    (v4(169, 254, 169, 254, 32), Internal::Metadata),
    (v4(100, 100, 100, 200, 32), Internal::Metadata),
    (v4(255, 255, 255, 255, 32), Internal::Broadcast),
    (v4(0, 0, 0, 0, 8), Internal::Unspecified),
    (v4(10, 0, 0, 0, 8), Internal::Private),
    (v4(100, 64, 0, 0, 10), Internal::Shared),
    (v4(127, 0, 0, 0, 8), Internal::Loopback),
    (v4(169, 254, 0, 0, 16), Internal::LinkLocal),
    (v4(172, 16, 0, 0, 12), Internal::Private),
    (v4(192, 0, 0, 0, 24), Internal::Reserved),
    (v4(192, 0, 2, 0, 24), Internal::Reserved),
    (v4(192, 168, 0, 0, 16), Internal::Private),
    (v4(198, 18, 0, 0, 15), Internal::Reserved),
    (v4(198, 51, 100, 0, 24), Internal::Reserved),
    (v4(203, 0, 113, 0, 24), Internal::Reserved),
    (v4(224, 0, 0, 0, 4), Internal::Multicast),
    (v4(240, 0, 0, 0, 4), Internal::Reserved),
];

/// Internal IPv6 ranges, the most specific first. (IPv4-mapped addresses are judged as the
/// IPv4 address they are, see [`canonical`].)
const V6: &[(Ipv6Net, Internal)] = &[
    // AWS's IPv6 metadata endpoint.
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        Internal::Metadata,
    ),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Internal::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Internal::Loopback),
    // IPv4-compatible (deprecated) and the rest of ::/64 but the mapped range.
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 64), Internal::Reserved),
    // Local-use NAT64 (RFC 8215): translated to whatever the operator's gateway reaches.
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Internal::Reserved),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Internal::Reserved),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        Internal::Reserved,
    ),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Internal::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Internal::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Internal::Private),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Internal::Multicast),
];

/// Host names of metadata services, refused by name whatever they resolve to.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog"];

/// What kind of internal address `ip` is; `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<Internal> {
    match canonical(ip) {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address the kernel connects
/// it to; any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Internal> {
    V4.iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|&(_, kind)| kind)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Internal> {
    if let Some(&(_, kind)) = V6.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(kind);
    }
    // Forms a gateway turns into an IPv4 address: NAT64's well-known prefix (64:ff9b::/96,
    // RFC 6052) and 6to4 (2002::/16, RFC 3056). Judged by the IPv4 address inside.
    let s = ip.segments();
    let inside = match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some((hi, lo)),
        [0x2002, hi, lo, ..] => Some((hi, lo)),
        _ => None,
    };
    inside.and_then(|(hi, lo)| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    })
}

/// Whether the server's own text (`remote:` lines, a `remote error:`) may be kept in a job's
/// error, for a host that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerText {
    /// Every address is public, or the operator named this host (or each of its internal
    /// addresses) exactly: its text is kept, capped.
    Keep,
    /// An internal address passed only because a wider CIDR covers it: whatever answers
    /// there may be any internal service, so its text never reaches a producer.
    Withhold,
}

/// A host the policy refuses, and why. Its text names the host and the reason, never a
/// path or a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the host {host:?} {reason}")]
pub struct Refusal {
    pub host: String,
    pub reason: String,
}

/// An entry of `GITFLEET_GIT_ALLOW_HOSTS` or `GITFLEET_GIT_HOSTS` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {position} ({entry:?}) {reason}")]
pub struct PolicyError {
    /// 1-based.
    pub position: usize,
    pub entry: String,
    pub reason: String,
}

/// Which hosts git may reach. The default refuses every internal address and allows every
/// public host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Host names allowed whatever (non-metadata) addresses they resolve to.
    names: BTreeSet<String>,
    /// Addresses allowed: single addresses (a /32 or /128) and wider CIDRs.
    nets: Vec<IpNet>,
    /// When set, the only hosts git may reach.
    hosts: Option<BTreeSet<String>>,
}

impl EgressPolicy {
    /// Adds the allowances of a `GITFLEET_GIT_ALLOW_HOSTS` list: host names, IP addresses
    /// and CIDRs, separated by commas or whitespace. A name allows every address it
    /// resolves to; an address or CIDR allows those addresses for any host. A metadata
    /// address is allowed only by an entry naming exactly that address, a metadata host
    /// name only by that name.
    pub fn allowing(mut self, list: &str) -> Result<Self, PolicyError> {
        for (position, entry) in entries(list) {
            let fail = |reason: &str| PolicyError {
                position,
                entry: entry.to_string(),
                reason: reason.to_string(),
            };
            if entry.contains('/') {
                let net: IpNet = entry
                    .parse()
                    .map_err(|_| fail("is not a valid CIDR (e.g. 10.0.0.0/8, fd00::/8)"))?;
                self.nets.push(net.trunc());
            } else if let Some(ip) = ip_literal(entry) {
                self.nets.push(IpNet::from(canonical(ip)));
            } else {
                self.names.insert(host_name(entry).map_err(fail)?);
            }
        }
        Ok(self)
    }

    /// Restricts the fleet to the hosts of a `GITFLEET_GIT_HOSTS` list (names, or IP
    /// addresses as written in URLs, separated by commas or whitespace): any other host is
    /// refused, public or not. The address check still applies to the hosts listed.
    pub fn only_hosts(mut self, list: &str) -> Result<Self, PolicyError> {
        let mut hosts = self.hosts.take().unwrap_or_default();
        for (position, entry) in entries(list) {
            let name = match ip_literal(entry) {
                Some(ip) => ip.to_string(),
                None => host_name(entry).map_err(|reason| PolicyError {
                    position,
                    entry: entry.to_string(),
                    reason: reason.to_string(),
                })?,
            };
            hosts.insert(name);
        }
        self.hosts = Some(hosts);
        Ok(self)
    }

    /// Whether nothing is allowed beyond the default (public hosts only, any of them).
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// The checks on a host's name, before it is resolved: in `GITFLEET_GIT_HOSTS` (when
    /// set), and not a metadata service's name (unless that name is allowed).
    pub fn check_name(&self, host: &str) -> Result<(), Refusal> {
        let name = normal(host);
        if let Some(hosts) = &self.hosts
            && !hosts.contains(&name)
        {
            return Err(refusal(
                host,
                format!("is not in {HOSTS_VAR} (the hosts this fleet may reach)"),
            ));
        }
        if METADATA_NAMES.contains(&name.as_str()) && !self.names.contains(&name) {
            return Err(refusal(host, "is a cloud metadata service".into()));
        }
        Ok(())
    }

    /// The verdict on `host` and every address it resolved to (or the address it is): each
    /// must be public or allowed. `Ok` says whether the server's text may be kept.
    pub fn check(&self, host: &str, addrs: &[IpAddr]) -> Result<ServerText, Refusal> {
        let name = normal(host);
        let literal = ip_literal(&name).is_some();
        if addrs.is_empty() {
            return Err(refusal(host, "resolves to no address".into()));
        }
        let by_name = !literal && self.names.contains(&name);
        let mut text = ServerText::Keep;
        for &addr in addrs {
            let addr = canonical(addr);
            let Some(kind) = classify(addr) else {
                continue;
            };
            let exact = self
                .nets
                .iter()
                .any(|n| n.prefix_len() == n.max_prefix_len() && n.contains(&addr));
            let wide = !exact && self.nets.iter().any(|n| n.contains(&addr));
            let allowed = match kind {
                Internal::Metadata => exact,
                _ => exact || wide || by_name,
            };
            if !allowed {
                let what = if literal {
                    format!("is {}", kind.describe())
                } else {
                    format!("resolves to {} {addr}", kind.describe())
                };
                let why = if kind == Internal::Metadata {
                    format!("allowed only by an entry of exactly that address in {ALLOW_HOSTS_VAR}")
                } else {
                    format!("not allowed by {ALLOW_HOSTS_VAR}")
                };
                return Err(refusal(host, format!("{what} ({why})")));
            }
            if wide && !by_name {
                text = ServerText::Withhold;
            }
        }
        Ok(text)
    }
}

impl fmt::Display for EgressPolicy {
    /// What the worker logs at startup: `internal allowed: localhost, 127.0.0.1/32; hosts:
    /// any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Vec<String> = self
            .names
            .iter()
            .cloned()
            .chain(self.nets.iter().map(ToString::to_string))
            .collect();
        if allowed.is_empty() {
            write!(f, "internal allowed: none")?;
        } else {
            write!(f, "internal allowed: {}", allowed.join(", "))?;
        }
        match &self.hosts {
            None => write!(f, "; hosts: any"),
            Some(hosts) => write!(
                f,
                "; hosts: only {}",
                hosts.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

fn refusal(host: &str, reason: String) -> Refusal {
    Refusal {
        host: host.to_string(),
        reason,
    }
}

/// The entries of a list, with their 1-based positions.
fn entries(list: &str) -> impl Iterator<Item = (usize, &str)> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .enumerate()
        .map(|(i, e)| (i + 1, e))
}

/// A host as compared: lowercase, without a trailing dot or IPv6 brackets.
fn normal(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// `host` as an IP address, if it is one (IPv6 with or without brackets).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn host_name(entry: &str) -> Result<String, &'static str> {
    let name = normal(entry);
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name)
    } else {
        Err("is neither a host name, an IP address nor a CIDR")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_named_by_kind() {
        for (addr, kind) in [
            ("127.0.0.1", Internal::Loopback),
            ("127.255.0.9", Internal::Loopback),
            ("::1", Internal::Loopback),
            ("10.1.2.3", Internal::Private),
            ("172.31.255.255", Internal::Private),
            ("192.168.0.1", Internal::Private),
            ("100.64.0.1", Internal::Shared),
            ("100.127.255.254", Internal::Shared),
            ("169.254.1.1", Internal::LinkLocal),
            ("fe80::1", Internal::LinkLocal),
            ("fc00::1", Internal::UniqueLocal),
            ("fd12:3456::1", Internal::UniqueLocal),
            ("224.0.0.1", Internal::Multicast),
            ("ff02::1", Internal::Multicast),
            ("0.0.0.0", Internal::Unspecified),
            ("0.1.2.3", Internal::Unspecified),
            ("::", Internal::Unspecified),
            ("255.255.255.255", Internal::Broadcast),
            ("240.0.0.1", Internal::Reserved),
            ("169.254.169.254", Internal::Metadata),
            ("100.100.100.200", Internal::Metadata),
            ("fd00:ec2::254", Internal::Metadata),
            // IPv4-mapped, NAT64 and 6to4 forms are judged by the IPv4 address inside.
            ("::ffff:127.0.0.1", Internal::Loopback),
            ("::ffff:169.254.169.254", Internal::Metadata),
            ("::ffff:10.0.0.1", Internal::Private),
            ("64:ff9b::7f00:1", Internal::Loopback),
            ("2002:a00:1::", Internal::Private),
            ("::127.0.0.1", Internal::Reserved),
            ("fec0::1", Internal::Private),
        ] {
            assert_eq!(classify(ip(addr)), Some(kind), "{addr}");
        }
        for public in [
            "1.1.1.1",
            "140.82.112.3",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_default_refuses_internal_addresses_naming_the_host_and_the_address() {
        let policy = EgressPolicy::default();
        let e = policy.check("localhost", &[ip("127.0.0.1")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the host \"localhost\" resolves to a loopback address 127.0.0.1 (not allowed by \
             GITFLEET_GIT_ALLOW_HOSTS)"
        );
        let e = policy.check("[::1]", &[ip("::1")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the host \"[::1]\" is a loopback address"),
            "{e}"
        );
        // One internal address among public ones is enough.
        let e = policy
            .check("mixed.example", &[ip("1.1.1.1"), ip("10.0.0.1")])
            .unwrap_err();
        assert!(e.reason.contains("a private address 10.0.0.1"), "{e}");
        assert_eq!(
            policy.check("github.com", &[ip("140.82.112.3")]),
            Ok(ServerText::Keep)
        );
        assert!(policy.check("nothing.example", &[]).is_err());
    }

    #[test]
    fn allowances_by_address_cidr_and_name() {
        let policy = EgressPolicy::default()
            .allowing("127.0.0.1, 10.0.0.0/8 git.corp\t[fd00::1]")
            .unwrap();
        assert_eq!(
            policy.check("127.0.0.1", &[ip("127.0.0.1")]),
            Ok(ServerText::Keep)
        );
        // The IPv4-mapped form of an allowed address is that address.
        assert_eq!(
            policy.check("x", &[ip("::ffff:127.0.0.1")]),
            Ok(ServerText::Keep)
        );
        assert!(policy.check("127.0.0.2", &[ip("127.0.0.2")]).is_err());
        // Through a wider CIDR: allowed, but the server's text is withheld.
        assert_eq!(
            policy.check("10.9.9.9", &[ip("10.9.9.9")]),
            Ok(ServerText::Withhold)
        );
        // A name allows every address it resolves to (but a metadata one).
        assert_eq!(
            policy.check("GIT.corp.", &[ip("192.168.1.1"), ip("10.0.0.1")]),
            Ok(ServerText::Keep)
        );
        let e = policy
            .check("git.corp", &[ip("169.254.169.254")])
            .unwrap_err();
        assert!(
            e.reason
                .contains("only by an entry of exactly that address"),
            "{e}"
        );
        assert_eq!(policy.check("v6", &[ip("fd00::1")]), Ok(ServerText::Keep));
        assert!(policy.check("v6", &[ip("fd00::2")]).is_err());
    }

    #[test]
    fn metadata_is_allowed_only_by_its_exact_address_or_name() {
        let wide = EgressPolicy::default()
            .allowing("169.254.0.0/16,100.64.0.0/10")
            .unwrap();
        assert!(wide.check("a", &[ip("169.254.1.1")]).is_ok());
        assert!(wide.check("a", &[ip("169.254.169.254")]).is_err());
        assert!(wide.check("a", &[ip("100.100.100.200")]).is_err());
        let exact = EgressPolicy::default().allowing("169.254.169.254").unwrap();
        assert!(exact.check("a", &[ip("169.254.169.254")]).is_ok());

        let e = EgressPolicy::default()
            .check_name("Metadata.Google.Internal")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the host \"Metadata.Google.Internal\" is a cloud metadata service"
        );
        let named = EgressPolicy::default()
            .allowing("metadata.google.internal")
            .unwrap();
        assert!(named.check_name("metadata.google.internal").is_ok());
    }

    #[test]
    fn the_hosts_list_refuses_any_other_host_even_a_public_one() {
        let policy = EgressPolicy::default()
            .only_hosts("github.com gitlab.example.org,[::1]")
            .unwrap();
        assert!(policy.check_name("github.com").is_ok());
        assert!(policy.check_name("GitHub.com.").is_ok());
        assert!(policy.check_name("[::1]").is_ok());
        let e = policy.check_name("bitbucket.org").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the host \"bitbucket.org\" is not in GITFLEET_GIT_HOSTS (the hosts this fleet may \
             reach)"
        );
        // Listed, but still judged by its addresses.
        assert!(policy.check("[::1]", &[ip("::1")]).is_err());
    }

    #[test]
    fn bad_entries_are_named_by_position() {
        let e = EgressPolicy::default()
            .allowing("127.0.0.1, 10.0.0.0/33")
            .unwrap_err();
        assert_eq!(e.position, 2);
        assert!(e.to_string().contains("is not a valid CIDR"), "{e}");
        let e = EgressPolicy::default()
            .only_hosts("ok.example bad/host")
            .unwrap_err();
        assert_eq!((e.position, e.entry.as_str()), (2, "bad/host"));
        assert!(EgressPolicy::default().allowing("-x").is_err());
        assert!(
            EgressPolicy::default()
                .allowing(" , ")
                .unwrap()
                .is_default()
        );
    }

    #[test]
    fn the_policy_describes_itself_for_the_startup_log() {
        let policy = EgressPolicy::default()
            .allowing("localhost 127.0.0.1")
            .unwrap()
            .only_hosts("localhost")
            .unwrap();
        assert_eq!(
            policy.to_string(),
            "internal allowed: localhost, 127.0.0.1/32; hosts: only localhost"
        );
        assert_eq!(
            EgressPolicy::default().to_string(),
            "internal allowed: none; hosts: any"
        );
    }
}
