//! The clients in `examples/` (curl, Python with httpx, Node's fetch) run as someone who
//! copied them would run them: real processes, given `GITFLEET_URL`, `GITFLEET_KEY` and
//! `REPO_URL`, against the gateway binary, a worker and a git daemon on loopback.
//!
//! Each must land the commit it prints on the agent branch exactly once, with the file it
//! wrote, and release its sandbox; wait out `429`s (the key may make one request a second
//! here, so the wait that follows each enqueue is refused at first); and end with a clear message
//! and a non-zero exit status on a problem document and on a dead job. A tool an example
//! needs that is missing (curl, jq, python3 with venv, node) fails the test, naming it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::GitDaemon;
use gitfleet_testkit::fixtures::{self, git};

use crate::support::{World, world_with};

/// The longest one run of an example may take before the test gives up on it (a bound
/// against a hang, not a measure of speed).
const RUN_BOUND: Duration = Duration::from_secs(300);

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// One example: how to start it, and the file it writes.
struct Example {
    program: PathBuf,
    args: Vec<PathBuf>,
    /// The path it writes in the sandbox, and the words its content ends with.
    path: &'static str,
    from: &'static str,
}

/// What one run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `program --version` (or `args`), panicking with `why` if it cannot be run.
fn require(program: &str, args: &[&str], why: &str) -> String {
    match std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            text.trim().to_string()
        }
        Ok(out) => panic!(
            "`{program} {}` failed ({}): {}; {why}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run `{program}`: {e}; {why}"),
    }
}

impl Example {
    fn curl() -> Self {
        let why = "examples/curl.sh needs bash, curl and jq (scripts/test installs them)";
        require("bash", &["--version"], why);
        require("curl", &["--version"], why);
        require("jq", &["--version"], why);
        Example {
            program: "bash".into(),
            args: vec![examples_dir().join("curl.sh")],
            path: "notes/from-curl.md",
            from: "from curl.",
        }
    }

    /// The Python example in a virtual environment under the target directory, with the
    /// pinned requirements installed from PyPI (once; later runs find them satisfied).
    fn python() -> Self {
        let python = python_venv("examples-venv", "python/requirements.txt");
        Example {
            program: python,
            args: vec![examples_dir().join("python/gitfleet_example.py")],
            path: "notes/from-python.md",
            from: "from Python.",
        }
    }

    fn node() -> Self {
        let version = require(
            "node",
            &["--version"],
            "examples/typescript needs Node.js 18 or later (scripts/test installs it)",
        );
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(
            major >= 18,
            "examples/typescript needs Node.js 18 or later (its fetch); this is {version}"
        );
        Example {
            program: "node".into(),
            args: vec![examples_dir().join("typescript/gitfleet_example.mjs")],
            path: "notes/from-typescript.md",
            from: "from TypeScript.",
        }
    }

    /// Runs the example against `w`'s gateway with `key`, on `repo_url`, as agent `a1` on
    /// task `task`.
    async fn run(&self, w: &World, key: &str, repo_url: &str, task: &str) -> Run {
        let mut cmd = tokio::process::Command::new(&self.program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GITFLEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(&self.args)
            .current_dir(w.fleet.tmp())
            .env("GITFLEET_URL", &w.gw.base)
            .env("GITFLEET_KEY", key)
            .env("REPO_URL", repo_url)
            .env("AGENT_ID", "a1")
            .env("TASK_ID", task)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(RUN_BOUND, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{:?} still running after {RUN_BOUND:?}", self.args))
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The python of a virtual environment `name` under the target directory, with the pinned
/// `requirements` (under `examples/`) installed from PyPI: made once, reused after.
fn python_venv(name: &str, requirements: &str) -> PathBuf {
    let why = "examples/python needs python3 with its venv module (scripts/test installs them)";
    require("python3", &["-m", "venv", "--help"], why);
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    if !python.exists() {
        let venv_arg = venv.to_string_lossy().to_string();
        require("python3", &["-m", "venv", &venv_arg], why);
    }
    let requirements = examples_dir().join(requirements);
    let out = std::process::Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "pip install -r {} into {} failed ({}): {}",
        requirements.display(),
        venv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// The whole check of one example; see the module docs.
async fn lands_its_commit_once_and_fails_clearly(example: Example) {
    let w = world_with(&[
        ("GITFLEET_GATEWAY_RATE_PER_SEC", "1"),
        ("GITFLEET_GATEWAY_RATE_BURST", "1"),
    ])
    .await;
    let bare = fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let key = w.key("acme", Role::Producer).await;
    // Its own key, so its reads do not take from the example's rate.
    let viewer = w.key("acme", Role::Viewer).await;

    let run = example.run(&w, &key, &daemon.url("repo.git"), "t1").await;
    assert_eq!(run.code, Some(0), "{run}");
    let steps: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split([':', ' ']).next())
        .collect();
    assert_eq!(
        steps,
        [
            "clone",
            "write_files",
            "status",
            "push",
            "release",
            "commit"
        ],
        "each step printed, the commit last\n{run}"
    );
    let status_line = run.stdout.lines().nth(2).unwrap();
    assert!(status_line.contains(example.path), "{run}");
    let sha = run
        .stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("commit "))
        .unwrap_or_else(|| panic!("the last line is `commit <sha>`\n{run}"));
    assert!(
        sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sha:?}\n{run}"
    );
    assert!(
        run.stderr.to_lowercase().contains("retry"),
        "the example waited out a 429 and said so\n{run}"
    );

    // On the remote: the agent branch's tip, once; one commit with the example's message.
    let branch = "agent-a1-t1";
    let log = git(&bare, ["log", "--format=%H %s", branch]).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with(sha)).count(),
        1,
        "{log}"
    );
    assert!(log.starts_with(sha), "the branch's tip\n{log}");
    let message = format!("Add {} (", example.path);
    assert_eq!(
        log.lines().filter(|l| l.contains(&message)).count(),
        1,
        "{log}"
    );
    let content = git(&bare, ["show", &format!("{sha}:{}", example.path)]).unwrap();
    assert_eq!(
        content,
        format!("Written by agent a1 for task t1, {}", example.from)
    );
    let usage = w.get(&viewer, "/v1/orgs/acme/usage").await;
    assert_eq!(
        usage.body["live_sandboxes"], 0,
        "released\n{}\n{run}",
        usage.text
    );

    // A problem document: the gateway refuses the clone, naming the field.
    let run = example
        .run(&w, &key, "ftp://127.0.0.1/repo.git", "t2")
        .await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("400 invalid_input") && run.stderr.contains("args.repo_url"),
        "{run}"
    );
    assert!(!run.stdout.contains("commit "), "{run}");

    // A dead job: the repository does not exist.
    let run = example
        .run(&w, &key, &daemon.url("missing.git"), "t3")
        .await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("clone job") && run.stderr.contains(" is dead after "),
        "{run}"
    );
    assert!(!run.stdout.contains("commit "), "{run}");
    let branches = git(&bare, ["branch", "--list", "agent-a1-*"]).unwrap();
    assert_eq!(branches.trim(), branch, "only the first run pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_example_lands_its_commit_once_and_fails_clearly_on_problems_and_dead_jobs() {
    lands_its_commit_once_and_fails_clearly(Example::curl()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_lands_its_commit_once_and_fails_clearly_on_problems_and_dead_jobs() {
    lands_its_commit_once_and_fails_clearly(Example::python()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_lands_its_commit_once_and_fails_clearly_on_problems_and_dead_jobs() {
    lands_its_commit_once_and_fails_clearly(Example::node()).await;
}

/// A Python MCP client (the official `mcp` package, in a virtual environment of its own with
/// `examples/python/mcp-requirements.txt`) lists the tools at `/mcp` and runs clone → write
/// → push → release through them; its commit is on the agent branch exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_client_lists_the_tools_and_lands_its_commit_through_mcp() {
    let python = python_venv("mcp-venv", "python/mcp-requirements.txt");
    let example = Example {
        program: python,
        args: vec![examples_dir().join("python/mcp_example.py")],
        path: "MCP.md",
        from: "through MCP",
    };
    let w = world_with(&[]).await;
    let bare = fixtures::bare_repo(&w.fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&w.fleet.remotes()).unwrap();
    let key = w.key("acme", Role::Producer).await;
    let run = example.run(&w, &key, &daemon.url("repo.git"), "t1").await;
    assert_eq!(run.code, Some(0), "{run}");
    let tools = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("tools: "))
        .unwrap_or_else(|| panic!("the tools listed\n{run}"));
    assert_eq!(
        tools,
        "git_change git_clone git_diff git_pull git_push git_release git_status git_write_files",
        "{run}"
    );
    let sha = run
        .stdout
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("commit "))
        .unwrap_or_else(|| panic!("the last line is `commit <sha>`\n{run}"));
    let log = git(&bare, ["log", "--format=%H %s", "agent-a1-t1"]).unwrap();
    assert!(log.starts_with(sha), "the branch's tip\n{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.ends_with(" Notes from the Python MCP client"))
            .count(),
        1,
        "{log}"
    );
    let file = git(&bare, ["show", "agent-a1-t1:MCP.md"]).unwrap();
    assert_eq!(file.trim_end(), "written through MCP");
    // Released: the organization has no live sandbox left.
    let usage = w.get(&key, "/v1/orgs/acme/usage").await;
    assert_eq!(usage.body["live_sandboxes"], 0, "{}", usage.text);
}
