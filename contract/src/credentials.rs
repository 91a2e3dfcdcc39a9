//! Tokens for git over HTTPS, each bound to a URL prefix (`https://host[:port][/path]`) and
//! optionally to organizations, kept out of every URL, argv, log line, payload, row and
//! metric. [`Credentials::parse`] reads the `GITFLEET_GIT_CREDENTIALS` list;
//! [`Credentials::for_url`] is the one rule that decides which token, if any, a repository
//! URL gets: same scheme, exactly the same host and port, a path under the prefix.

use std::fmt;

use crate::rules::{RepoUrl, check_host_port, split_port};

/// One credential: the user and token sent as HTTP Basic auth, and the organizations whose
/// jobs may use it. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    token: String,
    orgs: Vec<String>,
}

impl Credential {
    pub fn new(username: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            token: token.into(),
            orgs: Vec::new(),
        }
    }

    /// The same credential, for the jobs of `orgs` only (`;orgs=` in the list).
    pub fn for_orgs(mut self, orgs: Vec<String>) -> Self {
        self.orgs = orgs;
        self
    }

    /// The token, for the one place that hands it to git (the runner) and for the redactor.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The organizations this credential is restricted to; empty means any. A restricted
    /// credential serves only the jobs whose envelope names one of them (see
    /// [`Credentials::for_url`]); the fleet's own jobs, and jobs of no organization, never.
    pub fn orgs(&self) -> &[String] {
        &self.orgs
    }

    /// Whether a job of `org` (`None`: of no organization) may use this credential by its
    /// `;orgs=` list (any job when the list is empty).
    pub fn permits_org(&self, org: Option<&str>) -> bool {
        self.orgs.is_empty() || org.is_some_and(|org| self.orgs.iter().any(|o| o == org))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("token", &"***")
            .field("orgs", &self.orgs)
            .finish()
    }
}

/// Whether `http://` prefixes are accepted. Refused by default: a token sent over plain
/// http is readable by anyone on the path. Tests against the loopback http git servers
/// (and nothing else) allow them, through `GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS=true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlainHttp {
    #[default]
    Refused,
    Allowed,
}

/// Where a credential may be sent: a scheme (`https`, or `http` where [`PlainHttp::Allowed`]),
/// one host, one port (443/80 when not given) and a path prefix on segment boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPrefix {
    scheme: &'static str,
    /// Lowercase; IPv6 in brackets.
    host: String,
    port: u16,
    /// `""` (the whole host) or `/seg[/seg…]`, with no trailing `/`.
    path: String,
}

impl UrlPrefix {
    /// Parses `https://HOST[:PORT][/PATH]`. The error is a reason that never repeats the
    /// text (a token pasted into the wrong place must not end up in a log line).
    pub fn parse(prefix: &str, http: PlainHttp) -> Result<Self, String> {
        let Some((scheme, rest)) = prefix.split_once("://") else {
            return Err("the prefix must start with https://".into());
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => "https",
            "http" if http == PlainHttp::Allowed => "http",
            "http" => {
                return Err(
                    "an http:// prefix is refused: a token is sent only over https \
                            (GITFLEET_GIT_ALLOW_HTTP_CREDENTIALS=true accepts http:// for \
                            tests on loopback)"
                        .into(),
                );
            }
            _ => return Err("the prefix must start with https://".into()),
        };
        if rest.contains(['?', '#']) {
            return Err("the prefix must not contain a query or fragment".into());
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err("the prefix must not contain user info (the user goes after '=')".into());
        }
        let host_port = check_host_port(authority)?;
        let (host, port) = split_port(&host_port);
        let port = match port {
            Some(port) => port.parse().map_err(|_| "the port is not valid")?,
            None => default_port(scheme),
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                check_segment(segment)?;
            }
        }
        Ok(Self {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// Whether a token for this prefix may go with a request to `url`: the same scheme,
    /// the same host and the same port (the scheme's default port when either side names
    /// none, so `https://h` is `https://h:443`; never a fallback from `host:port` to `host`),
    /// and a path equal to the prefix's or under it on a segment boundary (`/org` covers
    /// `/org/repo.git`, not `/organization/x.git`). Under a path prefix, a URL whose path
    /// has `.` or `..` segments or percent-escapes never matches: git and servers normalise
    /// those, and the path they reach could be outside the prefix.
    pub fn matches(&self, url: &RepoUrl) -> bool {
        if url.scheme != self.scheme {
            return false;
        }
        let (host, port) = split_port(&url.host);
        let port = match port {
            Some(port) => port.parse::<u16>().ok(),
            None => Some(default_port(self.scheme)),
        };
        if host != self.host || port != Some(self.port) {
            return false;
        }
        if self.path.is_empty() {
            return true;
        }
        let Some(rest) = url.path.strip_prefix(&self.path) else {
            return false;
        };
        (rest.is_empty() || rest.starts_with('/'))
            && !url.path.contains('%')
            && !url.path.split('/').any(|s| s == "." || s == "..")
    }

    /// `https`, or `http` for a prefix parsed with [`PlainHttp::Allowed`].
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The URL git's `http.<url>.*` settings are scoped to, with a trailing `/`, so git
    /// applies the header only to requests under this prefix (git matches the scheme, host,
    /// port and path segments itself too).
    pub fn git_config_url(&self) -> String {
        format!("{self}/")
    }

    /// The length of the path prefix, for "longest prefix wins".
    fn specificity(&self) -> usize {
        self.path.len()
    }
}

impl fmt::Display for UrlPrefix {
    /// `https://host[:port][/path]`, the port only when it is not the scheme's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if self.port != default_port(self.scheme) {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" { 80 } else { 443 }
}

/// One segment of a prefix's path: not empty, not `.` or `..`, no percent-escapes (the
/// prefix is compared with URLs as written), no characters repository paths may not have.
fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("the path must not contain empty segments ('//')".into());
    }
    if segment == "." || segment == ".." {
        return Err("the path must not contain '.' or '..' segments".into());
    }
    if let Some(c) = segment
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "%\\'\"`$;&|<>(){}[]*?!^=".contains(*c))
    {
        return Err(format!("the path must not contain {c:?}"));
    }
    Ok(())
}

/// Credentials by URL prefix.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    entries: Vec<(UrlPrefix, Credential)>,
}

/// An entry of the credentials list that cannot be used: its position (1-based) and why,
/// never any of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {position}: {reason}")]
pub struct CredentialsError {
    pub position: usize,
    pub reason: String,
}

/// What [`Credentials::parse`] read.
#[derive(Debug, Clone, Default)]
pub struct ParsedCredentials {
    pub credentials: Credentials,
    /// Entries in the old `host[:port]=user:token` form (read as `https://host[:port]`):
    /// their positions and the prefix each was read as, for a warning.
    pub legacy: Vec<(usize, UrlPrefix)>,
}

impl Credentials {
    /// Reads a credentials list: entries separated by commas or whitespace, each
    ///
    /// ```text
    /// https://HOST[:PORT][/PATH-PREFIX]=USER:TOKEN[;orgs=ORG|ORG…]
    /// ```
    ///
    /// An entry without `://` is the old `HOST[:PORT]=USER:TOKEN` form, read as
    /// `https://HOST[:PORT]` and listed in [`ParsedCredentials::legacy`]. The token runs to
    /// the first `;`: a token cannot contain `,`, `;` or whitespace. Two entries with the same
    /// prefix are refused, as is anything after `;` other than one `orgs=` list.
    pub fn parse(list: &str, http: PlainHttp) -> Result<ParsedCredentials, CredentialsError> {
        let mut parsed = ParsedCredentials::default();
        let entries = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        for (index, entry) in entries.enumerate() {
            let position = index + 1;
            let fail = |reason: String| CredentialsError { position, reason };
            let (prefix, credential, legacy) = parse_entry(entry, http).map_err(fail)?;
            if let Some(earlier) = parsed.credentials.position_of(&prefix) {
                // Entries are kept in list order: index + 1 is the earlier one's position.
                return Err(fail(format!("the same prefix as entry {}", earlier + 1)));
            }
            if legacy {
                parsed.legacy.push((position, prefix.clone()));
            }
            parsed.credentials.entries.push((prefix, credential));
        }
        Ok(parsed)
    }

    /// Adds a credential for `prefix`, replacing one for the same prefix.
    pub fn insert(&mut self, prefix: UrlPrefix, credential: Credential) {
        match self.position_of(&prefix) {
            Some(i) => self.entries[i].1 = credential,
            None => self.entries.push((prefix, credential)),
        }
    }

    /// The credential for `url`, if any: among the prefixes that match it (see
    /// [`UrlPrefix::matches`]), the longest.
    pub fn for_url(&self, url: &RepoUrl) -> Option<(&UrlPrefix, &Credential)> {
        self.select(url)
            .map(|(_, prefix, credential)| (prefix, credential))
    }

    /// The entry that serves `url` (for `url.org`), with its position in the list.
    fn select(&self, url: &RepoUrl) -> Option<(usize, &UrlPrefix, &Credential)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, (prefix, credential))| {
                prefix.matches(url) && credential.permits_org(url.org.as_deref())
            })
            .max_by_key(|(_, (prefix, _))| prefix.specificity())
            .map(|(i, (prefix, credential))| (i, prefix, credential))
    }

    /// A filesystem-safe mark of the credential that serves `url`, when that credential is
    /// restricted to some organizations (`c<position in the list>`); `None` when no
    /// credential serves it or the one that does serves everyone.
    pub fn restricted_mark(&self, url: &RepoUrl) -> Option<String> {
        self.select(url)
            .filter(|(_, _, credential)| !credential.orgs().is_empty())
            .map(|(i, _, _)| format!("c{i}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&UrlPrefix, &Credential)> {
        self.entries.iter().map(|(p, c)| (p, c))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position_of(&self, prefix: &UrlPrefix) -> Option<usize> {
        self.entries.iter().position(|(p, _)| p == prefix)
    }
}

/// One entry: the prefix, the credential, and whether it was in the old form.
fn parse_entry(entry: &str, http: PlainHttp) -> Result<(UrlPrefix, Credential, bool), String> {
    let Some((prefix, secret)) = entry.split_once('=') else {
        return Err("expected https://host[:port][/path]=user:token (values not shown)".into());
    };
    let (secret, options) = match secret.split_once(';') {
        Some((secret, options)) => (secret, Some(options)),
        None => (secret, None),
    };
    let Some((user, token)) = secret.split_once(':') else {
        return Err("expected user:token after '=' (values not shown)".into());
    };
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    let legacy = !prefix.contains("://");
    let prefix = if legacy {
        if prefix.contains('/') {
            return Err("the old host[:port] form has no path; write https://host/path".into());
        }
        UrlPrefix::parse(&format!("https://{prefix}"), http)?
    } else {
        UrlPrefix::parse(prefix, http)?
    };
    let mut credential = Credential::new(user, token);
    if let Some(options) = options {
        credential = credential.for_orgs(parse_orgs(options)?);
    }
    Ok((prefix, credential, legacy))
}

/// `orgs=ORG|ORG…`, the only option after `;`.
fn parse_orgs(options: &str) -> Result<Vec<String>, String> {
    let Some(list) = options.strip_prefix("orgs=") else {
        return Err("the only option after ';' is orgs=ORG|ORG (values not shown)".into());
    };
    let orgs: Vec<String> = list.split('|').map(str::to_string).collect();
    for org in &orgs {
        if org.is_empty() {
            return Err("orgs= must list organizations separated by '|', none empty".into());
        }
        if org.chars().any(|c| c.is_control() || "=;:".contains(c)) {
            return Err(
                "an organization in orgs= contains '=', ';', ':' or a control character".into(),
            );
        }
    }
    Ok(orgs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::repo_url;

    const TOKEN: &str = "tok-S3CRET";

    fn prefix(text: &str) -> UrlPrefix {
        UrlPrefix::parse(text, PlainHttp::Refused).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn url(text: &str) -> RepoUrl {
        repo_url("repo_url", text, false).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn parse(list: &str) -> Result<ParsedCredentials, CredentialsError> {
        Credentials::parse(list, PlainHttp::Refused)
    }

    /// The user of the credential `list` gives `repo`, if any.
    fn user_for(list: &str, repo: &str) -> Option<String> {
        let parsed = parse(list).unwrap();
        parsed
            .credentials
            .for_url(&url(repo))
            .map(|(_, c)| c.username.clone())
    }

    #[test]
    fn reads_prefixes_with_ports_paths_and_orgs() {
        let parsed = parse(&format!(
            "https://GitHub.com=a:{TOKEN}, https://git.example:8443/team/=b:{TOKEN};orgs=acme|Umbrella\n\
             \thttps://[::1]:9443/x/y=c:{TOKEN}"
        ))
        .unwrap();
        assert!(parsed.legacy.is_empty());
        let got: Vec<(String, &str, &[String])> = parsed
            .credentials
            .iter()
            .map(|(p, c)| (p.to_string(), c.username.as_str(), c.orgs()))
            .collect();
        assert_eq!(got[0], ("https://github.com".to_string(), "a", &[][..]));
        assert_eq!(got[1].0, "https://git.example:8443/team");
        assert_eq!(got[1].2, ["acme".to_string(), "Umbrella".to_string()]);
        assert_eq!(got[2].0, "https://[::1]:9443/x/y");
        let (_, c) = parsed.credentials.iter().nth(1).unwrap();
        assert_eq!(c.token(), TOKEN);
        assert!(c.permits_org(Some("acme")) && !c.permits_org(Some("acme2")));
        assert!(
            !c.permits_org(None),
            "a restricted credential serves no org-less job"
        );
        assert!(
            parsed
                .credentials
                .iter()
                .next()
                .unwrap()
                .1
                .permits_org(None)
        );
        assert_eq!(prefix("https://h:443/a/").git_config_url(), "https://h/a/");
        assert_eq!(prefix("https://h:8443").git_config_url(), "https://h:8443/");
    }

    #[test]
    fn a_restricted_credential_serves_only_its_organizations_and_keeps_their_caches_apart() {
        let parsed = parse(&format!(
            "https://git.example/team=shared:{TOKEN} https://git.example/team/secret=own:{TOKEN};orgs=acme"
        ))
        .unwrap();
        let creds = &parsed.credentials;
        let secret = "https://git.example/team/secret/app.git";
        let user = |org: Option<&str>| {
            let url = url(secret).for_org(org, creds);
            creds.for_url(&url).map(|(_, c)| c.username.clone())
        };
        assert_eq!(user(Some("acme")).as_deref(), Some("own"));
        // Anyone else falls back to the entry that admits them.
        assert_eq!(user(Some("evil")).as_deref(), Some("shared"));
        assert_eq!(user(None).as_deref(), Some("shared"));

        // What acme fetched with its own token is cached apart; everyone else shares.
        let key = |org: Option<&str>| url(secret).for_org(org, creds).cache_key;
        assert_ne!(key(Some("acme")), key(Some("evil")));
        assert_eq!(key(Some("evil")), key(None));
        assert_eq!(key(None), url(secret).cache_key);
        // A repository no restricted entry covers is one cache for all.
        let open = "https://git.example/team/open.git";
        let open_key = |org: Option<&str>| url(open).for_org(org, creds).cache_key;
        assert_eq!(open_key(Some("acme")), open_key(Some("evil")));
    }

    #[test]
    fn the_old_host_form_is_read_as_https_and_reported() {
        let parsed = parse(&format!("example.com=u:{TOKEN} h:8443=v:{TOKEN}")).unwrap();
        let legacy: Vec<(usize, String)> = parsed
            .legacy
            .iter()
            .map(|(i, p)| (*i, p.to_string()))
            .collect();
        assert_eq!(
            legacy,
            [
                (1, "https://example.com".to_string()),
                (2, "https://h:8443".to_string())
            ]
        );
        assert_eq!(
            user_for(&format!("h:8443=v:{TOKEN}"), "https://h:8443/r.git").as_deref(),
            Some("v")
        );
        assert_eq!(
            user_for(&format!("h:8443=v:{TOKEN}"), "http://h:8443/r.git"),
            None
        );
    }

    #[test]
    fn bad_entries_are_refused_by_position_without_their_text() {
        let secret = "S3CRET-in-the-wrong-place";
        let cases = [
            (secret.to_string(), "expected https://"),
            (format!("https://h={secret}"), "expected user:token"),
            ("https://h=u:".to_string(), "token is empty"),
            (format!("http://h=u:{secret}"), "only over https"),
            (format!("ssh://h=u:{secret}"), "must start with https://"),
            (format!("ftp://h=u:{secret}"), "must start with https://"),
            (format!("https://u:{secret}@h=u:{secret}"), "user info"),
            (format!("https://h:0=u:{secret}"), "port"),
            (format!("https://h:99999=u:{secret}"), "port"),
            (format!("https://=u:{secret}"), "host"),
            (format!("https://h/a//b=u:{secret}"), "empty segments"),
            (format!("https://h/a/../b=u:{secret}"), "'..'"),
            (format!("https://h/a%2Fb=u:{secret}"), "'%'"),
            (format!("https://h/a?x=u:{secret}"), "query"),
            (
                format!("h/org=u:{secret}"),
                "old host[:port] form has no path",
            ),
            (format!("https://h=u:{secret};org=a"), "only option"),
            (format!("https://h=u:{secret};orgs="), "none empty"),
            (format!("https://h=u:{secret};orgs=a||b"), "none empty"),
            (format!("https://h=u:{secret};orgs=a;b"), "contains"),
        ];
        for (entry, want) in &cases {
            let list = format!("https://ok.example=u:{TOKEN}, {entry}");
            let err = parse(&list).expect_err(entry);
            assert_eq!(err.position, 2, "{entry}: {err}");
            let text = err.to_string();
            assert!(text.starts_with("entry 2: "), "{text}");
            assert!(text.contains(want), "{entry}: got {text:?}, want {want:?}");
            assert!(!text.contains(secret) && !text.contains(TOKEN), "{text}");
        }
        let err = parse(&format!("https://h=a:{TOKEN} https://H:443/=b:{TOKEN}")).unwrap_err();
        assert_eq!(err.to_string(), "entry 2: the same prefix as entry 1");
        assert!(parse("").unwrap().credentials.is_empty());
        assert_eq!(parse(" ,\n, ").unwrap().credentials.len(), 0);
    }

    #[test]
    fn plain_http_prefixes_only_when_allowed_and_only_for_http() {
        let list = format!("http://127.0.0.1:8080=u:{TOKEN}");
        assert!(parse(&list).is_err());
        let parsed = Credentials::parse(&list, PlainHttp::Allowed).unwrap();
        let get = |u: &str| parsed.credentials.for_url(&url(u)).is_some();
        assert!(get("http://127.0.0.1:8080/r.git"));
        assert!(!get("https://127.0.0.1:8080/r.git"));
        assert!(!get("http://127.0.0.1/r.git"));
        // Allowed or not, an https prefix never matches http.
        let parsed =
            Credentials::parse(&format!("https://h=u:{TOKEN}"), PlainHttp::Allowed).unwrap();
        assert!(parsed.credentials.for_url(&url("http://h/r.git")).is_none());
        assert!(
            parsed
                .credentials
                .for_url(&url("http://h:443/r.git"))
                .is_none()
        );
    }

    /// The matching rules, as (prefix, repository URL, whether the token goes).
    const MATCHES: &[(&str, &str, bool)] = &[
        // Scheme: https only.
        ("https://h", "https://h/r.git", true),
        ("https://h", "http://h/r.git", false),
        ("https://h", "git://h/r.git", false),
        ("https://h", "ssh://h/r.git", false),
        ("https://h", "h:r.git", false),
        // Host: exactly, case-insensitively.
        ("https://h", "https://H/r.git", true),
        ("https://h", "https://h.evil/r.git", false),
        ("https://h", "https://evil.h/r.git", false),
        ("https://h", "https://x.h/r.git", false),
        (
            "https://github.com",
            "https://github.com.evil.example/r.git",
            false,
        ),
        // Port: exactly; 443 when absent, on either side.
        ("https://h", "https://h:443/r.git", true),
        ("https://h:443", "https://h/r.git", true),
        ("https://h", "https://h:8443/r.git", false),
        ("https://h:8443", "https://h:8443/r.git", true),
        ("https://h:8443", "https://h/r.git", false),
        ("https://h:8443", "https://h:443/r.git", false),
        ("https://h:8443", "https://h:9443/r.git", false),
        (
            "https://127.0.0.1:8443",
            "https://127.0.0.1:8443/r.git",
            true,
        ),
        ("https://127.0.0.1:8443", "https://127.0.0.1/r.git", false),
        ("https://[::1]:8443", "https://[::1]:8443/r.git", true),
        ("https://[::1]:8443", "https://[::1]/r.git", false),
        // Path: under the prefix on a segment boundary, case-sensitively.
        ("https://h/org", "https://h/org/repo.git", true),
        ("https://h/org/", "https://h/org/repo.git", true),
        ("https://h/org", "https://h/org", true),
        ("https://h/org", "https://h/org/team/repo.git", true),
        ("https://h/org", "https://h/organization/x.git", false),
        ("https://h/org", "https://h/org.git", false),
        ("https://h/org", "https://h/Org/repo.git", false),
        ("https://h/org", "https://h/other/repo.git", false),
        ("https://h/org", "https://h//org/repo.git", false),
        ("https://h/org/team", "https://h/org/repo.git", false),
        // Paths a server or git would normalise out of the prefix.
        ("https://h/org", "https://h/org/../other/repo.git", false),
        ("https://h/org", "https://h/org/./repo.git", false),
        (
            "https://h/org",
            "https://h/org/%2e%2e/other/repo.git",
            false,
        ),
        ("https://h/org", "https://h/org%2Fx/repo.git", false),
        // A whole-host prefix covers every path on it.
        ("https://h", "https://h/org/../other.git", true),
    ];

    #[test]
    fn a_token_goes_only_over_https_to_its_exact_host_port_and_path_prefix() {
        for (p, u, want) in MATCHES {
            assert_eq!(prefix(p).matches(&url(u)), *want, "{p} for {u}");
        }
    }

    #[test]
    fn the_longest_matching_prefix_wins() {
        let list = format!(
            "https://h=host:{TOKEN} https://h/org=org:{TOKEN} https://h/org/team=team:{TOKEN} \
             https://h:8443/org=port:{TOKEN}"
        );
        let cases = [
            ("https://h/x.git", Some("host")),
            ("https://h/org/x.git", Some("org")),
            ("https://h/org/team/x.git", Some("team")),
            ("https://h/org/teams/x.git", Some("org")),
            ("https://h/organization/x.git", Some("host")),
            ("https://h:8443/org/x.git", Some("port")),
            ("https://h:8443/x.git", None),
            ("http://h/org/x.git", None),
        ];
        for (repo, want) in cases {
            assert_eq!(user_for(&list, repo).as_deref(), want, "{repo}");
        }
        // The order of the list does not matter.
        let reversed = format!(
            "https://h/org/team=team:{TOKEN} https://h/org=org:{TOKEN} https://h=host:{TOKEN}"
        );
        assert_eq!(
            user_for(&reversed, "https://h/org/team/x.git").as_deref(),
            Some("team")
        );
    }

    #[test]
    fn debug_never_shows_a_token() {
        let parsed = parse(&format!("https://h=u:{TOKEN};orgs=a")).unwrap();
        let text = format!("{parsed:?}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("***"));
    }
}
