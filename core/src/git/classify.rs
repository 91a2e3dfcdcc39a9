//! Turning a failed git process into an error kind and a short message.
//!
//! git runs with `LC_ALL=C`, so its messages are stable English. The table is checked in a
//! fixed order, first match wins: auth, conflict, invalid_input, network, then internal.
//! Auth comes first because an HTTP 403 also prints the generic "unable to access" and "the
//! remote end hung up" lines that would otherwise read as network trouble; conflict and
//! invalid_input come before network for the same reason (ssh adds "Could not read from
//! remote repository" to almost every failure).

use gitfleet_contract::ErrorKind;
use gitfleet_contract::egress::ServerText;

/// Most characters of git's own words kept in a failure message.
const MAX_DETAIL_CHARS: usize = 500;
/// Most bytes of a server's own text (`remote:` lines, a `remote error:`) kept from one git
/// process, well inside [`MAX_DETAIL_CHARS`] so the marker after it and git's own last line
/// still fit in a failure message.
const MAX_SERVER_TEXT: usize = 256;

/// Phrases (lowercase) that decide the kind, in the order they are tried.
const TABLE: &[(ErrorKind, &[&str])] = &[
    (
        ErrorKind::Auth,
        &[
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "returned error: 401",
            "returned error: 403",
            "http 401",
            "http 403",
            "permission denied (publickey",
            "permission denied (password",
            "permission denied (keyboard-interactive",
            "invalid username or password",
            // GitLab's "HTTP Basic: Access denied", git daemon's "access denied or
            // repository not exported" (what it says of any refused repository without
            // --informative-errors), gitolite's and other servers' refusals.
            "access denied",
            // git daemon with --informative-errors when its --access-hook refuses.
            "service rejected",
            "host key verification failed",
            "support for password authentication was removed",
            "write access to repository not granted",
        ],
    ),
    (
        ErrorKind::Conflict,
        &[
            "[rejected]",
            "non-fast-forward",
            "fetch first",
            "conflict (",
            "needs merge",
            "could not apply",
            "resolve all conflicts",
            "merge conflict",
            "not possible to fast-forward",
            "divergent branches",
            "would be overwritten by",
            "cannot lock ref",
            "incorrect old value",
            "stale info",
        ],
    ),
    (
        ErrorKind::InvalidInput,
        &[
            "does not appear to be a git repository",
            "repository not found",
            // git daemon: "fatal: remote error: no such repository: /x.git"
            "no such repository",
            "couldn't find remote ref",
            "invalid refspec",
            "did not match any",
            "does not match any",
            "not found in upstream",
            "returned error: 404",
            "http 404",
            // A redirect (301, 302, 303, 307, 308): never followed (`http.followRedirects=false`,
            // so a token cannot travel where it leads), so retrying cannot help; the job has
            // to name the URL it leads to.
            "returned error: 30",
            "is not a valid branch name",
            "not a valid ref",
            "invalid reference",
            "unknown revision",
            "bad revision",
            "ambiguous argument",
            "not a valid object name",
            "uses plaintext credentials",
            "[remote rejected]",
            "unsupported url protocol",
            // A tree git will not check out: `.git` in any case, `..`, NTFS/HFS aliases of
            // `.git` (`error: invalid path '.GIT/config'`). The repository's content, so
            // another attempt meets the same tree.
            "invalid path '",
        ],
    ),
    (
        ErrorKind::Network,
        &[
            "could not resolve host",
            "could not resolve proxy",
            "connection refused",
            "failed to connect",
            "connection timed out",
            "operation timed out",
            "connection reset",
            "network is unreachable",
            "no route to host",
            "early eof",
            "the remote end hung up unexpectedly",
            "unexpected disconnect",
            "rpc failed",
            "unable to access",
            "unable to connect",
            "could not read from remote repository",
            "returned error: 429",
            "returned error: 5",
            "ssl certificate",
            "ssl connect error",
            "gnutls",
            "tls connection",
            "index-pack failed",
        ],
    ),
];

/// The kind a failed git process's (redacted) stderr points to.
pub(super) fn classify(stderr: &str) -> ErrorKind {
    let lower = stderr.to_ascii_lowercase();
    for &(kind, phrases) in TABLE {
        if phrases.iter().any(|p| lower.contains(p)) {
            return kind;
        }
        if kind == ErrorKind::InvalidInput && lower.lines().any(is_remote_not_found) {
            return kind;
        }
        if kind == ErrorKind::InvalidInput && lower.lines().any(is_blocked_transport) {
            return kind;
        }
    }
    ErrorKind::Internal
}

/// `fatal: repository 'https://host/x.git/' not found`, `fatal: repository 'x' does not
/// exist`.
fn is_remote_not_found(line: &str) -> bool {
    line.contains("repository '") && (line.contains("not found") || line.contains("does not exist"))
}

/// `fatal: transport 'ext' not allowed`: the protocol allow-list at work.
fn is_blocked_transport(line: &str) -> bool {
    line.contains("transport '") && line.contains("not allowed")
}

/// git's stderr with the server's own text limited as `rule` says: the text of `remote:`
/// lines (an HTTP error body, a hook's or the server's messages) and of a `remote error:`
/// (git's protocol ERR packet) is dropped for [`ServerText::Withhold`], and cut after
/// [`MAX_SERVER_TEXT`] bytes for [`ServerText::Keep`]; a marker line says how much went.
/// git's own lines are kept whole.
pub(super) fn limit_server_text(stderr: &str, rule: ServerText) -> String {
    let mut budget = match rule {
        ServerText::Keep => MAX_SERVER_TEXT,
        ServerText::Withhold => 0,
    };
    // The kept pieces, and where the marker goes (where the text first stops, so it stays
    // next to git's own last lines); its text needs the whole count first.
    let mut pieces: Vec<&str> = Vec::new();
    let mut marker_at = None;
    let mut dropped = 0usize;
    for segment in stderr.split_inclusive(['\n', '\r']) {
        let (own, server) = if let Some(text) = segment.strip_prefix("remote:") {
            ("remote:", text)
        } else if let Some(at) = segment.find("remote error: ") {
            // git's own words before the server's stay, whatever happens to the rest.
            let (own, server) = segment.split_at(at + "remote error: ".len());
            pieces.push(own);
            ("", server)
        } else {
            pieces.push(segment);
            continue;
        };
        let body = server.trim_end_matches(['\n', '\r']);
        let end = &server[body.len()..];
        let mut keep = body.len().min(budget);
        while !body.is_char_boundary(keep) {
            keep -= 1;
        }
        budget -= keep;
        if keep > 0 {
            pieces.extend([own, &body[..keep]]);
            if keep < body.len() && end.is_empty() {
                pieces.push("\n");
            } else {
                pieces.push(end);
            }
        }
        if keep < body.len() {
            dropped += body.len() - keep;
            marker_at.get_or_insert(pieces.len());
        }
    }
    let Some(at) = marker_at else {
        return pieces.concat();
    };
    let marker = match rule {
        ServerText::Keep => format!("[{dropped} more bytes of the server's text cut]\n"),
        ServerText::Withhold => {
            format!("[{dropped} bytes of the server's text withheld: its address is internal]\n")
        }
    };
    let mut out = pieces[..at].concat();
    out.push_str(&marker);
    out.push_str(&pieces[at..].concat());
    out
}

/// `git <subcommand> failed: <detail>`, the detail being git's last meaningful stderr lines
/// (already redacted), at most 500 characters.
pub(super) fn failure_message(subcommand: Option<&str>, exit: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| is_meaningful(l))
        .collect();
    let mut picked: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let cost = line.chars().count() + if picked.is_empty() { 0 } else { 2 };
        if used + cost > MAX_DETAIL_CHARS && !picked.is_empty() {
            break;
        }
        picked.push(line);
        used += cost;
    }
    picked.reverse();
    let mut detail = picked.join("; ");
    if detail.chars().count() > MAX_DETAIL_CHARS {
        // One line longer than the limit: keep its end, where git puts the reason.
        let skip = detail.chars().count() - (MAX_DETAIL_CHARS - 3);
        detail = format!("...{}", detail.chars().skip(skip).collect::<String>());
    }
    if detail.is_empty() {
        detail = exit.to_string();
    }
    match subcommand {
        Some(sub) => format!("git {sub} failed: {detail}"),
        None => format!("git failed: {detail}"),
    }
}

/// Drops blank lines, hints, progress meters and the runner's own askpass refusal (it
/// precedes the line that says why git wanted a password), which say nothing about the
/// failure.
fn is_meaningful(line: &str) -> bool {
    if line.is_empty()
        || line.starts_with("hint:")
        || line == "remote:"
        || line.starts_with("error: unable to read askpass response")
    {
        return false;
    }
    let body = line.strip_prefix("remote: ").unwrap_or(line);
    const PROGRESS: &[&str] = &[
        "Enumerating objects",
        "Counting objects",
        "Compressing objects",
        "Receiving objects",
        "Resolving deltas",
        "Writing objects",
        "Total ",
        "Delta compression",
        "Unpacking objects",
        "Updating files",
        "Checking out files",
        "Filtering content",
    ];
    !PROGRESS.iter().any(|p| body.starts_with(p))
}

/// The git subcommand in an argv (`fetch` in `-C dir -c a=b fetch origin`), skipping the
/// global options before it, for messages.
pub(super) fn subcommand<'a>(args: &[&'a str]) -> Option<&'a str> {
    const TAKES_VALUE: &[&str] = &[
        "-c",
        "-C",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--config-env",
        "--exec-path",
    ];
    let mut iter = args.iter();
    while let Some(&arg) = iter.next() {
        if TAKES_VALUE.contains(&arg) {
            iter.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_real_git_prints() {
        use ErrorKind::*;
        let cases: &[(&str, ErrorKind)] = &[
            (
                "remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/o/r.git/'",
                Auth,
            ),
            (
                "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
                Auth,
            ),
            (
                "error: RPC failed; HTTP 403 curl 22 The requested URL returned error: 403\nfatal: the remote end hung up unexpectedly",
                Auth,
            ),
            (
                "fatal: unable to access 'https://h/r.git/': The requested URL returned error: 401",
                Auth,
            ),
            (
                "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
                Auth,
            ),
            (
                "Host key verification failed.\nfatal: Could not read from remote repository.",
                Auth,
            ),
            // git daemon, as captured from git 2.47: without --informative-errors, and with
            // an --access-hook that refuses.
            (
                "fatal: remote error: access denied or repository not exported: /nope.git",
                Auth,
            ),
            ("fatal: remote error: service rejected: /evil.git", Auth),
            (
                "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://gitlab.com/o/r.git/'",
                Auth,
            ),
            (
                " ! [rejected]        main -> main (fetch first)\nerror: failed to push some refs to 'h'",
                Conflict,
            ),
            (
                " ! [rejected]        main -> main (non-fast-forward)",
                Conflict,
            ),
            (
                "CONFLICT (content): Merge conflict in a.txt\nerror: could not apply 1234567... msg",
                Conflict,
            ),
            (
                "error: you need to resolve your current index first\na.txt: needs merge",
                Conflict,
            ),
            (
                " ! [remote rejected] main -> main (cannot lock ref 'refs/heads/main': is at 1 but expected 2)",
                Conflict,
            ),
            ("fatal: Not possible to fast-forward, aborting.", Conflict),
            (
                "fatal: '/tmp/x' does not appear to be a git repository\nfatal: Could not read from remote repository.",
                InvalidInput,
            ),
            (
                "remote: Repository not found.\nfatal: repository 'https://github.com/o/nope.git/' not found",
                InvalidInput,
            ),
            (
                "fatal: repository 'http://127.0.0.1:9/x.git/' not found",
                InvalidInput,
            ),
            (
                "fatal: unable to access 'http://127.0.0.1:9/x.git/': The requested URL returned error: 302",
                InvalidInput,
            ),
            (
                "fatal: unable to access 'https://h/old.git/': The requested URL returned error: 301",
                InvalidInput,
            ),
            (
                "fatal: repository 'no-such-repo' does not exist",
                InvalidInput,
            ),
            (
                "fatal: couldn't find remote ref refs/heads/nope",
                InvalidInput,
            ),
            (
                "warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin",
                InvalidInput,
            ),
            ("fatal: invalid refspec 'a b'", InvalidInput),
            (
                "error: pathspec 'nope' did not match any file(s) known to git",
                InvalidInput,
            ),
            ("error: src refspec nope does not match any", InvalidInput),
            ("fatal: transport 'ext' not allowed", InvalidInput),
            // Checking out a hostile tree, as captured from git 2.47 (clone, then checkout).
            (
                "error: invalid path '.GIT/config'\nfatal: unable to checkout working tree\nwarning: Clone succeeded, but checkout failed.\nYou can inspect what was checked out with 'git status'\nand retry with 'git restore --source=HEAD :/'",
                InvalidInput,
            ),
            ("error: invalid path '.git/config'", InvalidInput),
            ("error: invalid path '..'", InvalidInput),
            ("error: invalid path 'GIT~1'", InvalidInput),
            (
                " ! [remote rejected] main -> main (protected branch hook declined)",
                InvalidInput,
            ),
            (
                "fatal: unable to access 'https://nope.invalid/x/': Could not resolve host: nope.invalid",
                Network,
            ),
            (
                "ssh: Could not resolve hostname nope: Name or service not known\nfatal: Could not read from remote repository.",
                Network,
            ),
            (
                "fatal: unable to access 'http://127.0.0.1:1/x/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
                Network,
            ),
            (
                "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
                Network,
            ),
            (
                "fetch-pack: unexpected disconnect while reading sideband packet\nfatal: early EOF\nfatal: index-pack failed",
                Network,
            ),
            (
                "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502",
                Network,
            ),
            (
                "fatal: unable to access 'https://h/': gnutls_handshake() failed: Error in the pull function.",
                Network,
            ),
            (
                "fatal: not a git repository (or any of the parent directories): .git",
                Internal,
            ),
            (
                "fatal: destination path 'x' already exists and is not an empty directory.",
                Internal,
            ),
            ("", Internal),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), *want, "{stderr}");
        }
    }

    #[test]
    fn hostile_content_and_refused_access_are_never_retried() {
        for stderr in [
            "error: invalid path '.GIT/config'\nfatal: unable to checkout working tree",
            "fatal: remote error: access denied or repository not exported: /x.git",
            "fatal: remote error: service rejected: /x.git",
            "remote: Repository not found.\nfatal: repository 'https://h/o/r.git/' not found",
            "fatal: unable to access 'https://h/r/': The requested URL returned error: 403",
        ] {
            assert!(!classify(stderr).is_retryable(), "{stderr}");
        }
    }

    #[test]
    fn messages_name_the_subcommand_and_keep_the_last_meaningful_lines() {
        let stderr = "Cloning into 'x'...\nhint: try this\nremote: Counting objects: 10% (1/10)\rremote: Counting objects: 100% (10/10), done.\n\nfatal: repository 'https://h/x/' not found\n";
        assert_eq!(
            failure_message(Some("clone"), "exit status 128", stderr),
            "git clone failed: Cloning into 'x'...; fatal: repository 'https://h/x/' not found"
        );
        assert_eq!(
            failure_message(
                Some("ls-remote"),
                "exit status 128",
                "error: unable to read askpass response from 'false'\nfatal: could not read Username for 'https://h': terminal prompts disabled\n"
            ),
            "git ls-remote failed: fatal: could not read Username for 'https://h': terminal prompts disabled"
        );
        assert_eq!(
            failure_message(Some("push"), "exit status 1", "\n"),
            "git push failed: exit status 1"
        );
        let long = format!("{}\nfatal: the end", "error: filler line\n".repeat(100));
        let msg = failure_message(None, "x", &long);
        assert!(msg.starts_with("git failed: error: filler line; "), "{msg}");
        assert!(msg.ends_with("; fatal: the end"), "{msg}");
        assert!(msg.len() - "git failed: ".len() <= MAX_DETAIL_CHARS);
        let one = format!("fatal: {}reason", "ü".repeat(600));
        let msg = failure_message(Some("fetch"), "x", &one);
        assert!(msg.ends_with("reason"));
        assert_eq!(
            msg.chars().count() - "git fetch failed: ".len(),
            MAX_DETAIL_CHARS
        );
    }

    #[test]
    fn a_servers_text_is_capped_or_withheld_and_a_marker_says_so() {
        let body = "internal secret line\n".repeat(50);
        let stderr = format!(
            "{}fatal: unable to access 'http://h/r.git/': The requested URL returned error: 500\n",
            body.lines()
                .map(|l| format!("remote: {l}\n"))
                .collect::<String>()
        );
        let kept = limit_server_text(&stderr, ServerText::Keep);
        let text: usize = kept
            .lines()
            .filter_map(|l| l.strip_prefix("remote:"))
            .map(str::len)
            .sum();
        assert!(text <= MAX_SERVER_TEXT, "{kept}");
        assert!(
            kept.contains("more bytes of the server's text cut]\n"),
            "{kept}"
        );
        assert!(kept.ends_with("returned error: 500\n"), "{kept}");
        // The failure message keeps the marker and git's own last line.
        let msg = failure_message(Some("fetch"), "x", &kept);
        assert!(
            msg.contains("of the server's text cut]; fatal: unable to access"),
            "{msg}"
        );

        let withheld = limit_server_text(&stderr, ServerText::Withhold);
        assert!(!withheld.contains("secret"), "{withheld}");
        assert!(
            withheld.starts_with(&format!(
                "[{} bytes of the server's text withheld: its address is internal]\nfatal:",
                50 * " internal secret line".len()
            )),
            "{withheld}"
        );
        // git's protocol ERR packet is the server's text too.
        let err = "fatal: remote error: internal detail here\n";
        assert_eq!(
            failure_message(
                Some("ls-remote"),
                "x",
                &limit_server_text(err, ServerText::Withhold)
            ),
            "git ls-remote failed: fatal: remote error: [20 bytes of the server's text \
             withheld: its address is internal]"
        );
        assert_eq!(limit_server_text(err, ServerText::Keep), err);
        // Nothing of the server's: unchanged.
        let plain = "Cloning into 'x'...\nfatal: repository 'https://h/x/' not found\n";
        assert_eq!(limit_server_text(plain, ServerText::Withhold), plain);
    }

    #[test]
    fn finds_the_subcommand_after_global_options() {
        assert_eq!(subcommand(&["fetch", "origin"]), Some("fetch"));
        assert_eq!(
            subcommand(&["-C", "dir", "-c", "a=b", "--no-pager", "push"]),
            Some("push")
        );
        assert_eq!(subcommand(&["--git-dir", "x", "log"]), Some("log"));
        assert_eq!(subcommand(&["--git-dir=x", "log"]), Some("log"));
        assert_eq!(subcommand(&["--version"]), None);
    }
}
