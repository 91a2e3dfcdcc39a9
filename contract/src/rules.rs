//! Checks on what a job names before any of it reaches git: repository URLs, branch names
//! and paths inside a working tree. Each check returns `invalid_input` with a message of
//! the form `<field>: <reason>`; no message ever repeats a password or token back.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::credentials::Credentials;
use crate::error::JobError;

/// Longest repository URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest branch name accepted, in bytes (git itself has no limit short of the filesystem's).
const MAX_BRANCH_BYTES: usize = 200;
/// Longest path accepted, in bytes (Linux's PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;
/// Longest single path component, in bytes (NAME_MAX on every filesystem we run on).
const MAX_COMPONENT_BYTES: usize = 255;

/// A repository URL that passed the checks, and the parts the fleet needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// As given (no credentials allowed in it).
    pub url: String,
    /// `https`, `http`, `ssh`, `git` or `file`.
    pub scheme: String,
    /// `host` or `host:port` (empty for `file`).
    pub host: String,
    /// The path as given: `/org/repo.git` for `scheme://host/org/repo.git`, `org/repo.git`
    /// for scp-like `host:org/repo.git`, the absolute path for `file`.
    pub path: String,
    /// A stable, filesystem-safe key for per-repository caches.
    pub cache_key: String,
    /// The organization the repository is reached for (`None`: the fleet's own jobs, or a
    /// job without one): credentials restricted by `;orgs=` serve it only for theirs. See
    /// [`RepoUrl::for_org`].
    pub org: Option<String>,
}

impl RepoUrl {
    /// The same repository, reached for `org`'s jobs with `credentials`. When the credential
    /// that serves it is one restricted to some organizations (`;orgs=`), the cache key gets
    /// that credential's mark: what was fetched with it (a mirror, released working copies)
    /// is kept apart from what any other organization reaches, so a private repository that
    /// only `org` may read never serves another organization's clone from a shared cache.
    pub fn for_org(mut self, org: Option<&str>, credentials: &Credentials) -> Self {
        self.org = org.map(str::to_string);
        if let Some(mark) = credentials.restricted_mark(&self) {
            self.cache_key = format!("{}~{mark}", self.cache_key);
        }
        self
    }

    /// The host without its port (`host` for `host:8443`, `::1` for `[::1]:8443`).
    pub fn hostname(&self) -> &str {
        split_port(&self.host).0
    }
}

/// Checks a repository URL: an allowed scheme (https, http, ssh, git; file only when
/// `allow_file`), no credentials in it, no leading `-`, no `ext::`-style transports, no
/// control characters. `field` names the job field in the error.
///
/// Accepted forms: `scheme://[user@]host[:port]/path` (a user only for ssh), scp-like
/// `[user@]host:path` (ssh), and with `allow_file` also `file:///abs/path` and `/abs/path`.
pub fn repo_url(field: &str, url: &str, allow_file: bool) -> Result<RepoUrl, JobError> {
    let fail = |reason: String| JobError::invalid_input(format!("{field}: {reason}"));
    let allowed = if allow_file {
        "https, http, ssh, git, file"
    } else {
        "https, http, ssh, git"
    };

    if url.is_empty() {
        return Err(fail("must not be empty".into()));
    }
    if url.len() > MAX_URL_BYTES {
        return Err(fail(format!("is longer than {MAX_URL_BYTES} bytes")));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(fail(
            "must not contain whitespace or control characters".into(),
        ));
    }
    if url.starts_with('-') {
        return Err(fail("must not start with '-'".into()));
    }
    for option in ["--upload-pack", "--receive-pack", "--exec", "--config"] {
        if url.contains(option) {
            return Err(fail(format!("must not contain {option:?}")));
        }
    }
    // `<transport>::<address>` makes git run `git-remote-<transport>` (ext:: runs any
    // command). Git recognises it before anything else, so it is refused before anything else.
    if let Some(transport) = transport_prefix(url) {
        let transport = transport.to_ascii_lowercase();
        return Err(
            if ["https", "http", "ssh", "git", "file"].contains(&transport.as_str()) {
                fail(format!(
                    "the \"{transport}::\" transport syntax is not allowed"
                ))
            } else {
                fail(format!(
                    "scheme \"{transport}\" is not allowed (allowed: {allowed})"
                ))
            },
        );
    }

    let parsed = if let Some((scheme, rest)) = url.split_once("://") {
        if !is_scheme(scheme) {
            return Err(fail(format!(
                "is not a valid URL (expected one of {allowed}, or user@host:path)"
            )));
        }
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "https" | "http" | "ssh" | "git" => hierarchical(&scheme, rest).map_err(fail)?,
            "file" if allow_file => file_url(rest).map_err(fail)?,
            _ => {
                return Err(fail(format!(
                    "scheme \"{scheme}\" is not allowed (allowed: {allowed})"
                )));
            }
        }
    } else if url.starts_with('/') {
        if !allow_file {
            return Err(fail(format!(
                "local paths are not allowed (allowed: {allowed})"
            )));
        }
        local_path(url).map_err(fail)?
    } else if is_scp_like(url) {
        scp_like(url).map_err(fail)?
    } else {
        return Err(fail(format!(
            "is not a repository URL (expected one of {allowed}, or user@host:path)"
        )));
    };

    let cache_key = cache_key(&parsed.host, &parsed.path, url);
    Ok(RepoUrl {
        url: url.to_string(),
        scheme: parsed.scheme,
        host: parsed.host,
        path: parsed.path,
        cache_key,
        org: None,
    })
}

struct Parsed {
    scheme: String,
    host: String,
    path: String,
}

/// The `<transport>` of `<transport>::<address>`, by git's own rule (`transport.c`): a run of
/// URL-scheme characters, starting with a letter, directly followed by `::`.
fn transport_prefix(url: &str) -> Option<&str> {
    let end = url
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && is_scheme_char(c))))
        .map_or(url.len(), |(i, _)| i);
    (end > 0 && url[end..].starts_with("::")).then(|| &url[..end])
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

fn is_scheme(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(is_scheme_char)
}

/// Git treats `a:b` as scp-like ssh when the first `:` comes before any `/`.
fn is_scp_like(url: &str) -> bool {
    match (url.find(':'), url.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// `[user@]host[:port]/path` after `scheme://`.
fn hierarchical(scheme: &str, rest: &str) -> Result<Parsed, String> {
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            match scheme {
                // A token is often passed as the user name alone (`https://TOKEN@host`), so
                // http(s) refuses any user info, not only `user:password`.
                "https" | "http" => {
                    return Err(
                        "credentials are not allowed in the URL (configure a token for the host)"
                            .into(),
                    );
                }
                "ssh" if userinfo.contains(':') => {
                    return Err("a password is not allowed in the URL".into());
                }
                "ssh" => check_user(userinfo)?,
                _ => return Err(format!("a user name is not allowed in a {scheme} URL")),
            }
            host_port
        }
        None => authority,
    };
    let host = check_host_port(host_port)?;
    if path.starts_with(['?', '#']) || path.contains(['?', '#']) {
        return Err("must not contain a query or fragment".into());
    }
    check_remote_path(path.trim_start_matches('/'))?;
    Ok(Parsed {
        scheme: scheme.to_string(),
        host,
        path: path.to_string(),
    })
}

/// `[user@]host:path`, git's scp-like ssh syntax.
fn scp_like(url: &str) -> Result<Parsed, String> {
    let (user_host, path) = url.split_once(':').expect("scp-like has a colon");
    let host = match user_host.rsplit_once('@') {
        Some((user, host)) => {
            check_user(user)?;
            host
        }
        None => user_host,
    };
    if host.starts_with('[') {
        return Err("bracketed hosts are not supported in user@host:path form; use ssh://".into());
    }
    check_hostname(host)?;
    if path.contains('@') {
        return Err("the path must not contain '@' (credentials are not allowed)".into());
    }
    check_remote_path(path)?;
    Ok(Parsed {
        scheme: "ssh".into(),
        host: host.to_ascii_lowercase(),
        path: path.to_string(),
    })
}

/// `file://` followed by an absolute path (an empty host or `localhost`).
fn file_url(rest: &str) -> Result<Parsed, String> {
    let path = rest.strip_prefix("localhost").unwrap_or(rest).to_string();
    if !path.starts_with('/') {
        return Err("a file URL must name an absolute path (file:///path)".into());
    }
    local_path(&path)
}

fn local_path(path: &str) -> Result<Parsed, String> {
    if path.split('/').any(|c| c == "..") {
        return Err("a local path must not contain '..'".into());
    }
    Ok(Parsed {
        scheme: "file".into(),
        host: String::new(),
        path: path.to_string(),
    })
}

fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("the user name must be letters, digits, '.', '_' or '-', not starting with '-'".into())
    }
}

/// Checks `host[:port]` (or `[v6]:port`) and returns it lowercase.
pub(crate) fn check_host_port(host_port: &str) -> Result<String, String> {
    let (host, port) = split_port(host_port);
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if v6.is_empty()
            || !v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("the host is not a valid IPv6 address".into());
        }
    } else {
        check_hostname(host)?;
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Err("the port must be a number from 1 to 65535".into());
        }
    }
    Ok(host_port.to_ascii_lowercase())
}

/// Splits `host:port` / `[v6]:port` into the host and the port, if any.
pub(crate) fn split_port(host_port: &str) -> (&str, Option<&str>) {
    if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => {
                let (host, rest) = host_port.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (host_port, None),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    }
}

fn check_hostname(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host must not be empty".into());
    }
    if host.starts_with('-') {
        return Err("the host must not start with '-'".into());
    }
    if host.len() > 253
        || host.starts_with('.')
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("the host is not a valid host name".into());
    }
    Ok(())
}

/// The repository path, without its leading `/`. Shell and quoting characters are refused
/// outright: git quotes paths it hands to ssh, but nothing legitimate needs them.
fn check_remote_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must name a repository path".into());
    }
    if path.starts_with('-') {
        return Err("the path must not start with '-'".into());
    }
    if let Some(c) = path.chars().find(|c| "\\'\"`$;&|<>(){}[]*?!^".contains(*c)) {
        return Err(format!("the path must not contain {c:?}"));
    }
    Ok(())
}

/// A readable, filesystem-safe prefix (host and path) and the SHA-256 of the normalized URL,
/// so two URLs that sanitise alike still get different keys, and no two URLs can ever share
/// a mirror or a push lock (a 64-bit hash, as before, left that to chance).
fn cache_key(host: &str, path: &str, url: &str) -> String {
    let readable: String = format!("{host}/{path}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut squeezed = String::with_capacity(readable.len());
    for c in readable.chars() {
        if !(c == '_' && squeezed.ends_with('_')) {
            squeezed.push(c);
        }
    }
    let mut readable = squeezed
        .trim_matches(|c| c == '_' || c == '.' || c == '-')
        .to_string();
    readable.truncate(48);
    if readable.is_empty() {
        readable.push_str("repo");
    }
    let digest = Sha256::digest(normalized(url).as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("{readable}-{hex}")
}

/// The URL as [`cache_key`] hashes it: the scheme and the host are case-insensitive (RFC 3986,
/// 6.2.2.1), so they are lower-cased; the rest is kept as given (a user name or a path may
/// be case-sensitive, and two users of one repository must not share a mirror).
fn normalized(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    format!(
        "{}://{user}{}{path}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// Checks a branch name as `git check-ref-format --branch` would, and more: not empty, no
/// leading `-`, no `..`, no spaces or control characters, at most 200 bytes.
///
/// Git's rules (`refs.c`, `check_refname_format`) applied to `refs/heads/<name>`, plus the
/// `--branch` ones (no leading `-`, not `HEAD`), plus ours: not `@`, at most 200 bytes.
pub fn branch(field: &str, name: &str) -> Result<(), JobError> {
    branch_rule(name).map_err(|reason| JobError::invalid_input(format!("{field}: {reason}")))
}

fn branch_rule(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_BRANCH_BYTES {
        return Err(format!("is longer than {MAX_BRANCH_BYTES} bytes"));
    }
    if name.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    if name == "@" || name == "HEAD" {
        return Err(format!("{name:?} is not a branch name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
    {
        return Err(if c.is_ascii_control() {
            "must not contain control characters".into()
        } else {
            format!("must not contain {c:?}")
        });
    }
    if name.contains("..") {
        return Err("must not contain '..'".into());
    }
    if name.contains("@{") {
        return Err("must not contain '@{'".into());
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("must not start or end with '/' or contain '//'".into());
    }
    if name.ends_with('.') {
        return Err("must not end with '.'".into());
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return Err("no part between slashes may start with '.'".into());
        }
        if component.ends_with(".lock") {
            return Err("no part between slashes may end with '.lock'".into());
        }
    }
    Ok(())
}

/// Checks a path inside a working tree: relative, no `..`, not absolute, nothing under
/// `.git`, no NUL or control characters, at most 4096 bytes. Returns it normalised.
///
/// Normalised means `.` and empty components dropped (`./a//b/` is `a/b`). `.git` is refused
/// in every spelling a filesystem might fold to it: any case, trailing dots or spaces
/// (NTFS), the 8.3 name `git~1`, NTFS streams (`.git::$INDEX_ALLOCATION`) and HFS's
/// ignorable code points, the same set git's `verify_path` guards against. Whether a
/// component is a symlink needs the working tree and is checked where files are written.
pub fn path(field: &str, path: &str) -> Result<PathBuf, JobError> {
    path_rule(path).map_err(|reason| JobError::invalid_input(format!("{field}: {reason}")))
}

fn path_rule(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain NUL or control characters".into());
    }
    if path.starts_with('/') {
        return Err("must be relative to the working tree, not absolute".into());
    }
    // On Linux a backslash is an ordinary character, but git refuses such paths on other
    // systems and they only ever show up in attempts to smuggle `..\` or `.git\`.
    if path.contains('\\') {
        return Err("must not contain '\\' (use '/')".into());
    }
    let mut normalised = PathBuf::new();
    for component in path.split('/') {
        match component {
            "" | "." => continue,
            ".." => return Err("must not contain '..'".into()),
            _ if component.len() > MAX_COMPONENT_BYTES => {
                return Err(format!(
                    "no part between slashes may be longer than {MAX_COMPONENT_BYTES} bytes"
                ));
            }
            _ if is_dot_git(component) => {
                return Err("must not name or lie under .git".into());
            }
            _ => normalised.push(component),
        }
    }
    if normalised.as_os_str().is_empty() {
        return Err("must name something inside the working tree".into());
    }
    Ok(normalised)
}

/// Whether a path component is, or could be folded by some filesystem into, `.git`.
fn is_dot_git(component: &str) -> bool {
    let folded: String = component
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .collect::<String>()
        .to_lowercase();
    let trimmed = folded.trim_end_matches(['.', ' ']);
    trimmed == ".git"
        || folded.starts_with(".git:")
        || folded
            .strip_prefix("git~")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// Code points HFS+ ignores when comparing names (git's `is_hfs_dotgit` list).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(c as u32, 0x200c..=0x200f | 0x202a..=0x202e | 0x206a..=0x206f | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn url_err(url: &str, allow_file: bool) -> String {
        let err = repo_url("repo_url", url, allow_file).expect_err(url);
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        err.message
    }

    #[test]
    fn accepts_the_allowed_url_forms_and_names_their_host() {
        let cases = [
            ("https://github.com/org/repo.git", "https", "github.com"),
            ("http://127.0.0.1:8080/repo.git", "http", "127.0.0.1:8080"),
            ("HTTPS://GitHub.COM/Org/Repo", "https", "github.com"),
            (
                "ssh://git@example.com:2222/org/repo.git",
                "ssh",
                "example.com:2222",
            ),
            ("ssh://example.com/~user/repo", "ssh", "example.com"),
            ("git://example.org/repo", "git", "example.org"),
            ("git@github.com:org/repo.git", "ssh", "github.com"),
            ("example.com:repo", "ssh", "example.com"),
            ("https://[::1]:8443/repo", "https", "[::1]:8443"),
        ];
        for (url, scheme, host) in cases {
            let parsed = repo_url("repo_url", url, false).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.url, url);
            assert_eq!(parsed.scheme, scheme, "{url}");
            assert_eq!(parsed.host, host, "{url}");
        }
    }

    #[test]
    fn refuses_dangerous_and_malformed_urls() {
        let cases = [
            ("", "must not be empty"),
            ("ext::sh -c touch% /tmp/pwned", "whitespace"),
            (
                "ext::sh",
                "scheme \"ext\" is not allowed (allowed: https, http, ssh, git)",
            ),
            ("fd::3", "scheme \"fd\" is not allowed"),
            (
                "https::https://example.com/x",
                "\"https::\" transport syntax",
            ),
            ("-uhttps://x/y", "must not start with '-'"),
            ("ssh://-oProxyCommand=x/y", "host must not start with '-'"),
            ("-oProxyCommand=x:y", "must not start with '-'"),
            ("host:-path", "path must not start with '-'"),
            ("https://example.com/--upload-pack=touch", "--upload-pack"),
            ("ftp://example.com/x", "scheme \"ftp\" is not allowed"),
            ("file:///srv/repo", "scheme \"file\" is not allowed"),
            ("/srv/repo", "local paths are not allowed"),
            ("relative/repo", "is not a repository URL"),
            ("https://example.com", "must name a repository path"),
            ("https://example.com/", "must name a repository path"),
            ("https://exa mple.com/x", "whitespace"),
            ("https://example.com/x\n", "control"),
            ("https://example.com:99999/x", "port"),
            ("https://ex$ample.com/x", "not a valid host name"),
            ("https://example.com/x;rm", "must not contain ';'"),
            ("https://example.com/x?y=1", "query"),
            ("git://user@example.com/x", "user name is not allowed"),
            ("ssh://-user@example.com/x", "user name"),
        ];
        for (url, want) in cases {
            let msg = url_err(url, false);
            assert!(msg.starts_with("repo_url: "), "{url}: {msg}");
            assert!(msg.contains(want), "{url}: got {msg:?}, want {want:?}");
        }
        assert!(url_err(&format!("https://e.com/{}", "a".repeat(2048)), false).contains("2048"));
    }

    #[test]
    fn refuses_credentials_without_repeating_them() {
        for url in [
            "https://user:s3cr3t-pw@example.com/repo.git",
            "https://s3cr3t-pw@example.com/repo.git",
            "http://user:s3cr3t-pw@example.com/repo.git",
            "ssh://git:s3cr3t-pw@example.com/repo.git",
            "git@example.com:s3cr3t-pw@evil.com:repo",
        ] {
            let msg = url_err(url, false);
            assert!(!msg.contains("s3cr3t-pw"), "{url}: {msg}");
            assert!(
                msg.contains("credentials") || msg.contains("password"),
                "{url}: {msg}"
            );
        }
        // A bare ssh user name is how ssh URLs normally look.
        assert!(repo_url("r", "ssh://git@example.com/repo", false).is_ok());
    }

    #[test]
    fn file_urls_and_local_paths_only_when_allowed() {
        let f = repo_url("r", "file:///srv/repos/a.git", true).unwrap();
        assert_eq!((f.scheme.as_str(), f.host.as_str()), ("file", ""));
        let p = repo_url("r", "/srv/repos/a.git", true).unwrap();
        assert_eq!(p.scheme, "file");
        assert!(url_err("file://srv/repos", true).contains("absolute"));
        assert!(url_err("/srv/../etc", true).contains(".."));
        assert!(url_err("file:///srv/repo", false).contains("allowed: https, http, ssh, git)"));
    }

    #[test]
    fn cache_keys_are_filesystem_safe_stable_and_distinct() {
        let key = |u: &str| repo_url("r", u, true).unwrap().cache_key;
        let a = key("https://github.com/Org/Repo.git");
        assert!(a.starts_with("github.com_org_repo.git-"), "{a}");
        assert_eq!(a, key("https://github.com/Org/Repo.git"));
        // Same readable part, different URLs: different keys.
        assert_ne!(a, key("https://github.com/org/repo.git"));
        assert_ne!(key("https://h/a_b"), key("https://h/a/b"));
        for k in [a, key("git@h:x/y"), key("file:///srv/Repos/x.git")] {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
                "{k}"
            );
            assert!(!k.starts_with('.') && k.len() <= 48 + 1 + 64, "{k}");
        }
        // Scheme and host are case-insensitive; user and path are not.
        assert_eq!(
            key("HTTPS://GitHub.COM/Org/Repo.git"),
            key("https://github.com/Org/Repo.git")
        );
        assert_ne!(key("ssh://alice@h/x"), key("ssh://bob@h/x"));
        // The hash is part of the on-disk layout and of the push lock's name: it must never
        // change. SHA-256 of the normalized URL, in full.
        assert_eq!(
            key("https://h/a"),
            "h_a-616e3352b314cc4b59220a28abeeed9d79b809ae62ec3e54b7daebd2c8de26ac"
        );
    }

    #[test]
    fn the_host_is_lowercase_and_the_path_kept_as_given() {
        let u = repo_url("r", "https://Example.com:8443/A/b.git", false).unwrap();
        assert_eq!(u.host, "example.com:8443");
        assert_eq!(u.hostname(), "example.com");
        assert_eq!(u.path, "/A/b.git");
        let s = repo_url("r", "git@example.com:a/b.git", false).unwrap();
        assert_eq!(
            (s.host.as_str(), s.path.as_str()),
            ("example.com", "a/b.git")
        );
    }

    /// Names and whether they are valid branch names by our rules.
    const BRANCHES: &[(&str, bool)] = &[
        ("main", true),
        ("feature/x-1", true),
        ("agent-a1-t2", true),
        ("refs/heads/x", true),
        ("x@", true),
        ("@x", true),
        ("é-unicode", true),
        ("a.b", true),
        ("a/b.c/d", true),
        ("", false),
        ("-x", false),
        ("--force", false),
        ("HEAD", false),
        ("@", false),
        ("a..b", false),
        ("..", false),
        ("a b", false),
        ("a\tb", false),
        ("a\u{7f}b", false),
        ("a~1", false),
        ("a^", false),
        ("a:b", false),
        ("a?", false),
        ("a*", false),
        ("a[b", false),
        ("a\\b", false),
        ("a/", false),
        ("/a", false),
        ("a//b", false),
        ("a.", false),
        ("a/.b", false),
        (".a", false),
        ("a.lock", false),
        ("a/b.lock/c", false),
        ("a@{b", false),
        ("@{-1}", false),
        ("a/./b", false),
        ("a/../b", false),
    ];

    #[test]
    fn branch_rules_match_the_table() {
        for &(name, valid) in BRANCHES {
            let got = branch("branch", name);
            assert_eq!(got.is_ok(), valid, "{name:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.message.starts_with("branch: "), "{}", e.message);
            }
        }
        assert!(branch("branch", &"a".repeat(200)).is_ok());
        assert!(branch("branch", &"a".repeat(201)).is_err());
    }

    /// Our rules must reject every name real git rejects (they may reject more).
    #[test]
    fn branch_rules_reject_everything_git_check_ref_format_rejects() {
        let Ok(probe) = std::process::Command::new("git").arg("--version").output() else {
            panic!("git is required for this test");
        };
        assert!(probe.status.success());
        let extra: Vec<String> = vec!["a".repeat(201)];
        let names = BRANCHES
            .iter()
            .map(|(n, _)| n.to_string())
            .chain(extra)
            .chain(["x.lock/y", "x/y.", "a@{", "a\u{1}b", "~x", "x/-y"].map(String::from));
        for name in names {
            let git_ok = std::process::Command::new("git")
                .args(["check-ref-format", "--branch", &name])
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .current_dir(std::env::temp_dir())
                .output()
                .expect("run git")
                .status
                .success();
            let ours = branch_rule(&name);
            if !git_ok {
                assert!(ours.is_err(), "git rejects {name:?} but we accept it");
            }
            // Where we are stricter than git, it is on purpose: say which rule.
            if git_ok && ours.is_err() {
                assert!(
                    name == "@" || name.len() > MAX_BRANCH_BYTES,
                    "we reject {name:?} ({ours:?}) but git accepts it"
                );
            }
        }
    }

    #[test]
    fn paths_are_normalised_and_kept_inside_the_tree() {
        let ok = [
            ("src/main.rs", "src/main.rs"),
            ("./a//b/", "a/b"),
            ("a/./b", "a/b"),
            (".gitignore", ".gitignore"),
            (".gitmodules", ".gitmodules"),
            ("docs/.github/x", "docs/.github/x"),
            ("git~x", "git~x"),
            ("dir/..file", "dir/..file"),
        ];
        for (input, want) in ok {
            assert_eq!(path("path", input).unwrap(), PathBuf::from(want), "{input}");
        }
        let bad = [
            ("", "must not be empty"),
            (".", "must name something"),
            ("./", "must name something"),
            ("/etc/passwd", "absolute"),
            ("../x", ".."),
            ("a/../../x", ".."),
            ("a/..", ".."),
            (".git/config", ".git"),
            ("a/.git/hooks/pre-commit", ".git"),
            (".GIT/config", ".git"),
            (".Git", ".git"),
            (".git./config", ".git"),
            (".git /config", ".git"),
            (".git. . /x", ".git"),
            ("GIT~1/config", ".git"),
            ("git~12", ".git"),
            (".git::$INDEX_ALLOCATION/x", ".git"),
            (".g\u{200c}it/config", ".git"),
            ("\u{feff}.git", ".git"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            ("a\\..\\b", "'\\'"),
        ];
        for (input, want) in bad {
            let msg = path("path", input).expect_err(input).message;
            assert!(msg.starts_with("path: "), "{msg}");
            assert!(msg.contains(want), "{input:?}: got {msg:?}, want {want:?}");
        }
        assert!(path("p", &"a/".repeat(2049)).is_err());
        assert!(path("p", &"a".repeat(256)).is_err());
        assert!(path("p", &"a".repeat(255)).is_ok());
    }
}
