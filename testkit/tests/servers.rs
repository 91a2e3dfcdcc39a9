//! The testkit's own tests: real git clients against the real servers it starts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gitfleet_testkit::fixtures::{
    bare_repo, clone_bare, commit_count, generated_repo, git, git_with_env, reflog, remote_log,
};
use gitfleet_testkit::http::basic_auth;
use gitfleet_testkit::{GitDaemon, HttpGitServer, RecordingServer, eventually_blocking};

const USER: &str = "agent-7";
const PASSWORD: &str = "s3cret-token";

fn new_root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().canonicalize().expect("canonical tempdir");
    (dir, path)
}

fn extra_header(header: &str) -> String {
    format!("http.extraHeader=Authorization: {header}")
}

/// Live (non-zombie) processes other than this one whose command line or environment
/// mentions `needle`, as `pid: cmdline`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    processes_where(needle, true)
}

fn processes_where(needle: &str, search_environ: bool) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let dir = entry.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if state == "Z" || state == "X" || state.is_empty() {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let environ = if search_environ {
            std::fs::read(dir.join("environ")).unwrap_or_default()
        } else {
            Vec::new()
        };
        let mentions = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        if mentions(&cmdline) || mentions(&environ) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{name}: {shown}"));
        }
    }
    found
}

fn commit_file(work: &Path, path: &str, content: &str, message: &str) {
    let full = work.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
    git(work, ["add", "-A"]).unwrap();
    git(work, ["commit", "--quiet", "-m", message]).unwrap();
}

#[test]
fn daemon_clone_commit_push() {
    let (_dir, root) = new_root();
    let bare = bare_repo(
        &root,
        "demo.git",
        &[("README.md", "hello\n"), ("src/lib.rs", "pub fn f() {}\n")],
    );
    assert_eq!(remote_log(&bare, "main"), ["initial commit"]);
    assert_eq!(reflog(&bare, "main").len(), 1, "the initial push is logged");
    let daemon = GitDaemon::start(&root).unwrap();
    assert_eq!(
        daemon.url("demo.git"),
        format!("git://127.0.0.1:{}/demo.git", daemon.port())
    );

    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    let b = work.path().join("b");
    git(
        work.path(),
        ["clone", "--quiet", &daemon.url("demo.git"), "a"],
    )
    .unwrap();
    git(
        work.path(),
        ["clone", "--quiet", &daemon.url("demo.git"), "b"],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(a.join("README.md")).unwrap(),
        "hello\n"
    );

    commit_file(&a, "docs/a.md", "from a\n", "add docs/a.md");
    git(&a, ["push", "--quiet", "origin", "main"]).unwrap();
    assert_eq!(
        remote_log(&bare, "main"),
        ["add docs/a.md", "initial commit"]
    );
    assert_eq!(commit_count(&bare, "main"), 2);

    // b is behind: a plain push is refused, and a forced one is refused by the server.
    commit_file(&b, "docs/b.md", "from b\n", "add docs/b.md");
    let err = git(&b, ["push", "origin", "main"]).unwrap_err().to_string();
    assert!(err.contains("rejected"), "{err}");
    let err = git(&b, ["push", "--force", "origin", "main"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-fast-forward"), "{err}");
    assert_eq!(
        remote_log(&bare, "main"),
        ["add docs/a.md", "initial commit"]
    );

    // After a rebase it goes through; the reflog shows only fast-forwards.
    git(&b, ["pull", "--quiet", "--rebase", "origin", "main"]).unwrap();
    git(&b, ["push", "--quiet", "origin", "main"]).unwrap();
    assert_eq!(
        remote_log(&bare, "main"),
        ["add docs/b.md", "add docs/a.md", "initial commit"]
    );
    let log = reflog(&bare, "main");
    assert_eq!(log.len(), 3, "{log:#?}");
    for pair in log.windows(2) {
        let new_of_first = pair[0].split(' ').nth(1).unwrap();
        let old_of_second = pair[1].split(' ').next().unwrap();
        assert_eq!(
            new_of_first, old_of_second,
            "each update starts where the last ended"
        );
    }
}

#[test]
fn fixtures_are_deterministic() {
    let (_d1, r1) = new_root();
    let (_d2, r2) = new_root();
    let files = [("a.txt", "a\n"), ("dir/b.txt", "b\n")];
    let one = bare_repo(&r1, "x.git", &files);
    let two = bare_repo(&r2, "x.git", &files);
    let head = |bare: &Path| git(bare, ["rev-parse", "refs/heads/main"]).unwrap();
    assert_eq!(head(&one), head(&two));
    assert_eq!(
        git(&one, ["config", "core.logAllRefUpdates"]).unwrap(),
        "always"
    );
    assert_eq!(
        git(&one, ["config", "receive.denyNonFastForwards"]).unwrap(),
        "true"
    );
    assert_eq!(git(&one, ["config", "http.receivepack"]).unwrap(), "true");
    let err = git(&one, ["rev-parse", "--verify", "refs/heads/nope"]).unwrap_err();
    assert!(format!("{err:#}").contains("fatal"), "{err:#}");
}

#[test]
fn http_clone_fetch_push_with_extra_header() {
    let (_dir, root) = new_root();
    let bare = bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let server = HttpGitServer::start(&root, USER, PASSWORD).unwrap();
    let url = server.url("demo.git");
    assert_eq!(url, format!("http://127.0.0.1:{}/demo.git", server.port()));
    let auth = basic_auth(USER, PASSWORD);
    let header = extra_header(&auth);

    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    git(work.path(), ["-c", &header, "clone", "--quiet", &url, "a"]).unwrap();
    assert_eq!(
        std::fs::read_to_string(a.join("README.md")).unwrap(),
        "hello\n"
    );

    // A push larger than http.postBuffer (1 MiB) goes out chunked.
    let big: String = (0..60_000).map(|i| format!("line {i:08}\n")).collect();
    commit_file(&a, "data/big.txt", &big, "add big file");
    git(&a, ["-c", &header, "push", "--quiet", "origin", "main"]).unwrap();
    assert_eq!(
        remote_log(&bare, "main"),
        ["add big file", "initial commit"]
    );

    // The token the way gitfleet hands it to git: GIT_CONFIG_* variables.
    let b = work.path().join("b");
    git_with_env(
        work.path(),
        ["clone", "--quiet", &url, "b"],
        [
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "http.extraHeader"),
            ("GIT_CONFIG_VALUE_0", &format!("Authorization: {auth}")),
        ],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(b.join("data/big.txt")).unwrap(),
        big
    );
    commit_file(&a, "second.txt", "2\n", "second");
    git(&a, ["-c", &header, "push", "--quiet", "origin", "main"]).unwrap();
    git(&b, ["-c", &header, "pull", "--quiet", "--rebase"]).unwrap();
    assert_eq!(
        std::fs::read_to_string(b.join("second.txt")).unwrap(),
        "2\n"
    );

    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.authorization.as_deref(), Some(auth.as_str()), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path == "/demo.git/git-receive-pack")
    );
    assert!(requests.iter().any(|r| r.method == "GET"
        && r.path == "/demo.git/info/refs"
        && r.query.as_deref() == Some("service=git-upload-pack")));
    assert_eq!(server.auth_failures(), 0);
    assert!(!url.contains(PASSWORD) && !url.contains('@'));
}

/// Whether git's error says the server refused the credentials (or that it had none to
/// give: with terminal prompts off and no credential helper, git stops at "could not read
/// Username ... terminal prompts disabled" before a second request).
fn is_auth_error(err: &str) -> bool {
    err.contains("Authentication failed")
        || err.contains("401")
        || err.contains("terminal prompts disabled")
}

#[test]
fn http_without_or_with_wrong_credentials_fails() {
    let (_dir, root) = new_root();
    bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let server = HttpGitServer::start(&root, USER, PASSWORD).unwrap();
    let url = server.url("demo.git");
    let work = tempfile::tempdir().unwrap();
    let clone_fails = |extra: &[&str], dest: &str| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["clone", "--quiet", url.as_str(), dest]);
        let err = format!("{:#}", git(work.path(), &args).unwrap_err());
        eprintln!("{extra:?}: {err}");
        assert!(is_auth_error(&err), "{err}");
        assert!(!work.path().join(dest).exists());
        err
    };

    // No credentials, no way to ask for any.
    let err = clone_fails(&[], "none");
    assert!(err.contains("terminal prompts disabled"), "{err}");
    assert_eq!(server.auth_failures(), 1);

    // No credentials, an askpass that answers nothing: git retries with empty ones.
    let err = clone_fails(&["-c", "core.askPass=true"], "empty");
    assert!(err.contains("Authentication failed"), "{err}");
    assert_eq!(server.auth_failures(), 3);

    // Wrong credentials in http.extraHeader.
    let wrong = basic_auth(USER, "wrong");
    let header = extra_header(&wrong);
    clone_fails(&["-c", &header], "wrong");
    clone_fails(&["-c", &header, "-c", "core.askPass=true"], "wrong2");
    assert!(server.auth_failures() > 3);

    let requests = server.requests();
    assert_eq!(
        requests.iter().filter(|r| r.status == 401).count(),
        server.auth_failures()
    );
    assert!(requests.iter().all(|r| r.status == 401), "{requests:#?}");
    assert!(requests.iter().any(|r| r.authorization.is_none()));
    assert!(
        requests
            .iter()
            .any(|r| r.authorization.as_deref() == Some(wrong.as_str()))
    );
    // The askpass round sent `Basic base64(":")`.
    assert!(
        requests
            .iter()
            .any(|r| r.authorization.as_deref() == Some(basic_auth("", "").as_str()))
    );
}

#[test]
fn recording_servers_keep_every_header_and_answer_401_or_a_redirect() {
    let target = RecordingServer::unauthorized().unwrap();
    let redirect = RecordingServer::redirecting_to(&target.url("")).unwrap();
    let work = tempfile::tempdir().unwrap();

    // git sends the header it was given; the 401 makes it fail.
    let header = basic_auth(USER, PASSWORD);
    let err = format!(
        "{:#}",
        git(
            work.path(),
            [
                "-c",
                &extra_header(&header),
                "ls-remote",
                &target.url("r.git")
            ]
        )
        .unwrap_err()
    );
    assert!(is_auth_error(&err), "{err}");
    let seen = target.requests();
    assert!(!seen.is_empty());
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/r.git/info/refs?service=git-upload-pack");
    assert!(!seen[0].header("User-Agent").is_empty(), "{seen:?}");
    let authorization = target.authorization_headers();
    assert!(
        !authorization.is_empty() && authorization.iter().all(|a| *a == header),
        "{authorization:?}"
    );

    // The redirect keeps the path and query, and points at the other server.
    let mut stream = TcpStream::connect(("127.0.0.1", redirect.port())).unwrap();
    stream
        .write_all(b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Seen: yes\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("location: {}", target.url("a/b?c=d"))),
        "{answer}"
    );
    let seen = redirect.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-seen"), ["yes"]);
    assert!(redirect.authorization_headers().is_empty());
}

#[tokio::test]
async fn http_server_works_from_a_current_thread_tokio_test() {
    let (_dir, root) = new_root();
    bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let server = HttpGitServer::start(&root, USER, PASSWORD).unwrap();
    let work = tempfile::tempdir().unwrap();
    let status = tokio::process::Command::new("git")
        .args([
            "-c",
            &extra_header(&basic_auth(USER, PASSWORD)),
            "clone",
            "--quiet",
            &server.url("demo.git"),
        ])
        .arg(work.path().join("c"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(work.path().join("c/README.md").is_file());
    drop(server);
}

#[test]
fn generated_repo_builds_fast_and_clones() {
    let (_dir, root) = new_root();
    let cache = root.join("cache");
    let started = Instant::now();
    let big = generated_repo(&cache, "big.git", 3000, 2000);
    let built = started.elapsed();
    eprintln!("generated_repo(3000 files, 2000 commits) built in {built:?}");
    assert_eq!(commit_count(&big, "main"), 2000);
    let tree = git(&big, ["ls-tree", "-r", "--name-only", "refs/heads/main"]).unwrap();
    assert_eq!(tree.lines().count(), 3000);
    let dirs: std::collections::BTreeSet<_> = tree
        .lines()
        .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d))
        .collect();
    assert!(
        dirs.len() >= 100,
        "files spread over {} directories",
        dirs.len()
    );
    let log = remote_log(&big, "main");
    assert_eq!(log.len(), 2000);
    assert_eq!(log.last().unwrap(), "initial import of 3000 files");

    // Cached: the second call reuses it.
    let stamp = |p: &Path| {
        std::fs::metadata(p.join("gitfleet-testkit-fixture"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let first_stamp = stamp(&big);
    let started = Instant::now();
    let again = generated_repo(&cache, "big.git", 3000, 2000);
    eprintln!("cached generated_repo took {:?}", started.elapsed());
    assert_eq!(again, big);
    assert_eq!(stamp(&again), first_stamp);

    // Clone it over git://, push to a disposable copy; the cache stays pristine.
    let served = root.join("served");
    let remote = clone_bare(&big, &served, "big.git");
    let daemon = GitDaemon::start(&served).unwrap();
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    git(
        work.path(),
        ["clone", "--quiet", &daemon.url("big.git"), "big"],
    )
    .unwrap();
    eprintln!("git clone of it over git:// took {:?}", started.elapsed());
    let checkout = work.path().join("big");
    let size: u64 = git(&checkout, ["ls-files"])
        .unwrap()
        .lines()
        .map(|p| std::fs::metadata(checkout.join(p)).unwrap().len())
        .sum();
    eprintln!("checkout: 3000 files, {:.1} MiB", size as f64 / 1048576.0);
    commit_file(&checkout, "NEW.md", "new\n", "a change");
    git(&checkout, ["push", "--quiet", "origin", "main"]).unwrap();
    assert_eq!(commit_count(&remote, "main"), 2001);
    assert_eq!(commit_count(&big, "main"), 2000);
    assert_eq!(
        generated_repo(&cache, "big.git", 3000, 2000),
        big,
        "still cached"
    );
    assert_eq!(stamp(&big), first_stamp);
}

#[test]
fn generated_repo_rebuilds_when_touched_or_parameters_change() {
    let (_dir, root) = new_root();
    let small = generated_repo(&root, "small.git", 20, 5);
    assert_eq!(commit_count(&small, "main"), 5);
    let head = git(&small, ["rev-parse", "refs/heads/main"]).unwrap();
    // Same parameters elsewhere: same commits.
    let (_dir2, root2) = new_root();
    let other = generated_repo(&root2, "small.git", 20, 5);
    assert_eq!(git(&other, ["rev-parse", "refs/heads/main"]).unwrap(), head);
    // Touched: an extra branch makes it stale.
    git(&small, ["branch", "extra", "refs/heads/main"]).unwrap();
    let small = generated_repo(&root, "small.git", 20, 5);
    assert!(git(&small, ["rev-parse", "--verify", "refs/heads/extra"]).is_err());
    // Other parameters: rebuilt under the same name.
    let small = generated_repo(&root, "small.git", 30, 7);
    assert_eq!(commit_count(&small, "main"), 7);
    let files = git(&small, ["ls-tree", "-r", "--name-only", "refs/heads/main"]).unwrap();
    assert_eq!(files.lines().count(), 30);
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["small.git"], "no half-built directories left");
}

#[test]
fn dropping_the_daemon_leaves_no_process() {
    let (_dir, root) = new_root();
    bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let needle = root.to_string_lossy().into_owned();
    let daemon = GitDaemon::start(&root).unwrap();
    // An open connection makes the daemon fork a child serving it.
    let mut conn = TcpStream::connect(("127.0.0.1", daemon.port())).unwrap();
    conn.write_all(b"00").unwrap();
    eventually_blocking(
        "git daemon and its connection child",
        Duration::from_secs(10),
        || processes_mentioning(&needle).len() >= 3,
    );
    eprintln!("while running: {:#?}", processes_mentioning(&needle));
    drop(daemon);
    eventually_blocking(
        "every daemon process to be gone",
        Duration::from_secs(5),
        || processes_mentioning(&needle).is_empty(),
    );
    // The port is closed.
    let mut buf = [0u8; 16];
    assert!(matches!(conn.read(&mut buf), Ok(0) | Err(_)));
}

const HELPER_ROOT: &str = "GITFLEET_TESTKIT_HELPER_ROOT";

/// Not a test: run by `a_killed_owner_leaves_no_daemon` in a child process, which it then
/// kills with SIGKILL (no Drop runs).
#[test]
#[ignore = "helper process for a_killed_owner_leaves_no_daemon"]
fn helper_start_daemon_and_hang() {
    let Some(root) = std::env::var_os(HELPER_ROOT) else {
        return;
    };
    let daemon = GitDaemon::start(Path::new(&root)).unwrap();
    println!("daemon on port {}", daemon.port());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_owner_leaves_no_daemon() {
    let (_dir, root) = new_root();
    bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let needle = format!("--base-path={}", root.display());
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_start_daemon_and_hang",
            "--nocapture",
        ])
        .env(HELPER_ROOT, &root)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually_blocking("the owner's daemon", Duration::from_secs(20), || {
        processes_where(&needle, false)
            .iter()
            .any(|p| p.contains("git-daemon"))
    });
    owner.kill().unwrap();
    owner.wait().unwrap();
    eventually_blocking(
        "the daemon of a killed owner to be gone",
        Duration::from_secs(5),
        || processes_where(&needle, false).is_empty(),
    );
}

#[test]
fn dropping_the_http_server_leaves_no_process() {
    let (_dir, root) = new_root();
    bare_repo(&root, "demo.git", &[("README.md", "hello\n")]);
    let needle = format!("GIT_PROJECT_ROOT={}", root.display());
    let server = HttpGitServer::start(&root, USER, PASSWORD).unwrap();

    // A clone that finished leaves nothing behind.
    let work = tempfile::tempdir().unwrap();
    let header = extra_header(&basic_auth(USER, PASSWORD));
    git(
        work.path(),
        [
            "-c",
            &header,
            "clone",
            "--quiet",
            &server.url("demo.git"),
            "c",
        ],
    )
    .unwrap();
    assert!(processes_mentioning(&needle).is_empty());

    // A request whose body never finishes keeps a backend waiting on its stdin.
    let mut conn = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    write!(
        conn,
        "POST /demo.git/git-upload-pack HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\
         Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 100000\r\n\r\n0032want",
        basic_auth(USER, PASSWORD)
    )
    .unwrap();
    eventually_blocking("a hung git http-backend", Duration::from_secs(10), || {
        !processes_mentioning(&needle).is_empty()
    });
    eprintln!("while running: {:#?}", processes_mentioning(&needle));
    let started = Instant::now();
    drop(server);
    eprintln!("drop took {:?}", started.elapsed());
    eventually_blocking(
        "every backend process to be gone",
        Duration::from_secs(5),
        || processes_mentioning(&needle).is_empty(),
    );
}
