//! Repository fixtures made with the real `git` binary.
//!
//! Every git process started here runs with a clean environment: only `PATH` is inherited;
//! no system or global config (`GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`), no
//! terminal prompts, `LC_ALL=C`, and a fixed author and committer (name, e-mail and date), so
//! the same fixture always gets the same commit ids.
//!
//! Bare repositories made here are configured as a strict remote:
//! `core.logAllRefUpdates=always` (the reflog under `logs/refs/heads/<branch>` proves that
//! nothing was force-pushed), `receive.denyNonFastForwards=true` and
//! `http.receivepack=true`.
//!
//! The fixture functions panic on failure (they are meant for tests); [`git`] returns errors.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Author and committer name of every commit made by the fixtures.
pub const AUTHOR_NAME: &str = "gitfleet-test";
/// Author and committer e-mail of every commit made by the fixtures.
pub const AUTHOR_EMAIL: &str = "test@gitfleet.invalid";
/// Author and committer date (raw git format) of commits made through [`git`].
pub const AUTHOR_DATE: &str = "1700000000 +0000";

/// Config set in every bare repository made here.
const REMOTE_CONFIG: [(&str, &str); 3] = [
    ("core.logAllRefUpdates", "always"),
    ("receive.denyNonFastForwards", "true"),
    ("http.receivepack", "true"),
];

/// The environment every git process started by the testkit gets (after `env_clear`).
pub(crate) fn base_env() -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH".into(), path));
    }
    for (k, v) in [
        ("LC_ALL", "C"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_AUTHOR_NAME", AUTHOR_NAME),
        ("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL),
        ("GIT_AUTHOR_DATE", AUTHOR_DATE),
        ("GIT_COMMITTER_NAME", AUTHOR_NAME),
        ("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL),
        ("GIT_COMMITTER_DATE", AUTHOR_DATE),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// Runs `git <args>` in `cwd` with the clean environment described in the module docs
/// (and `-c init.defaultBranch=main`). Returns stdout with trailing whitespace trimmed;
/// fails, with git's stderr in the error, when git exits non-zero.
pub fn git<I, S>(cwd: &Path, args: I) -> anyhow::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git_with_env(cwd, args, std::iter::empty::<(&str, &str)>())
}

/// [`git`] with extra environment variables on top of the clean environment (for example
/// `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`, the way gitfleet hands tokens
/// to git).
pub fn git_with_env<I, S, E, K, V>(cwd: &Path, args: I, env: E) -> anyhow::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let output = Command::new("git")
        .arg("-c")
        .arg("init.defaultBranch=main")
        .args(&args)
        .env_clear()
        .envs(base_env())
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning `git {shown}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        bail!(
            "`git {shown}` in {} failed ({}): {}{}",
            cwd.display(),
            output.status,
            stderr.trim(),
            if stderr.trim().is_empty() {
                stdout.trim().to_string()
            } else {
                String::new()
            }
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string())
}

fn must<T>(what: &str, r: anyhow::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(err) => panic!("{what}: {err:#}"),
    }
}

fn configure_remote(bare: &Path) -> anyhow::Result<()> {
    for (key, value) in REMOTE_CONFIG {
        git(bare, ["config", key, value])?;
    }
    Ok(())
}

/// Creates `<root>/<name>` as a bare repository whose `main` holds one commit
/// ("initial commit") with `files` (`(path, content)`; parent directories are created), and
/// the strict-remote config. The initial push is in the reflog.
///
/// # Panics
/// When the repository exists already or git fails.
pub fn bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    must(
        &format!("bare_repo {name}"),
        try_bare_repo(root, name, files),
    )
}

/// `git init --bare -b main <root>/<name>` with the strict-remote config; refuses a path
/// that exists already.
fn init_bare(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let bare = root.join(name);
    if bare.exists() {
        bail!("{} exists already", bare.display());
    }
    std::fs::create_dir_all(root)?;
    git(
        root,
        [
            OsStr::new("init"),
            OsStr::new("--quiet"),
            OsStr::new("--bare"),
            OsStr::new("-b"),
            OsStr::new("main"),
            bare.as_os_str(),
        ],
    )?;
    configure_remote(&bare)?;
    Ok(bare)
}

fn try_bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let bare = init_bare(root, name)?;

    let work = tempfile::tempdir()?;
    let w = work.path();
    git(w, ["init", "--quiet", "-b", "main"])?;
    for (path, content) in files {
        let full = w.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, content).with_context(|| format!("writing {path}"))?;
    }
    git(w, ["add", "-A"])?;
    git(
        w,
        ["commit", "--quiet", "--allow-empty", "-m", "initial commit"],
    )?;
    git(
        w,
        [
            OsStr::new("push"),
            OsStr::new("--quiet"),
            bare.as_os_str(),
            OsStr::new("main:refs/heads/main"),
        ],
    )?;
    Ok(bare)
}

/// Creates `<root>/<name>` as a bare repository whose `main` holds one commit ("initial
/// commit") with `files` (`(path, content)`) and `zeros` (`(path, size)`: files of that many
/// zero bytes), and the strict-remote config. The zeros are streamed into `git fast-import`
/// and compress to almost nothing, so a repository whose pack is a few kilobytes can check
/// out megabytes (or gigabytes) without the test ever writing them.
///
/// # Panics
/// When the repository exists already or git fails.
pub fn bare_repo_with_zeros(
    root: &Path,
    name: &str,
    files: &[(&str, &str)],
    zeros: &[(&str, u64)],
) -> PathBuf {
    must(
        &format!("bare_repo_with_zeros {name}"),
        try_bare_repo_with_zeros(root, name, files, zeros),
    )
}

fn try_bare_repo_with_zeros(
    root: &Path,
    name: &str,
    files: &[(&str, &str)],
    zeros: &[(&str, u64)],
) -> anyhow::Result<PathBuf> {
    let bare = init_bare(root, name)?;
    let mut child = Command::new("git")
        // Blobs over 1 MiB are streamed to the pack, never held in memory whole.
        .args(["fast-import", "--quiet", "--big-file-threshold=1m"])
        .env_clear()
        .envs(base_env())
        .current_dir(&bare)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning git fast-import")?;
    let stdin = child.stdin.take().context("fast-import stdin")?;
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    let zeros: Vec<(String, u64)> = zeros.iter().map(|(p, n)| (p.to_string(), *n)).collect();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        let mut mark = 0;
        for (_, content) in &files {
            mark += 1;
            write!(out, "blob\nmark :{mark}\ndata {}\n", content.len())?;
            out.write_all(content.as_bytes())?;
            out.write_all(b"\n")?;
        }
        let chunk = vec![0u8; 1 << 16];
        for (_, size) in &zeros {
            mark += 1;
            write!(out, "blob\nmark :{mark}\ndata {size}\n")?;
            let mut left = *size;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            out.write_all(b"\n")?;
        }
        let message = "initial commit\n";
        write!(
            out,
            "commit refs/heads/main\nauthor {AUTHOR_NAME} <{AUTHOR_EMAIL}> {AUTHOR_DATE}\n\
             committer {AUTHOR_NAME} <{AUTHOR_EMAIL}> {AUTHOR_DATE}\ndata {}\n{message}",
            message.len()
        )?;
        let paths = files
            .iter()
            .map(|(p, _)| p)
            .chain(zeros.iter().map(|(p, _)| p));
        for (i, path) in paths.enumerate() {
            writeln!(out, "M 100644 :{} {path}", i + 1)?;
        }
        out.write_all(b"\n")?;
        out.flush()
    });
    let output = child
        .wait_with_output()
        .context("waiting for git fast-import")?;
    let written = writer.join();
    if !output.status.success() {
        bail!(
            "git fast-import failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    match written {
        Ok(Ok(())) => Ok(bare),
        Ok(Err(err)) => Err(err).context("writing the fast-import stream"),
        Err(_) => bail!("the fast-import stream writer panicked"),
    }
}

/// Makes `<root>/<name>`, a bare copy of `src` (objects hard-linked where possible, every
/// branch, no `origin` remote) with the strict-remote config: a disposable remote made from
/// a cached [`generated_repo`], so pushes never touch the cache.
///
/// # Panics
/// When the target exists already or git fails.
pub fn clone_bare(src: &Path, root: &Path, name: &str) -> PathBuf {
    must(
        &format!("clone_bare {name}"),
        try_clone_bare(src, root, name),
    )
}

fn try_clone_bare(src: &Path, root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let bare = root.join(name);
    if bare.exists() {
        bail!("{} exists already", bare.display());
    }
    std::fs::create_dir_all(root)?;
    let mut args: Vec<OsString> = vec!["clone".into(), "--quiet".into(), "--bare".into()];
    for (key, value) in REMOTE_CONFIG {
        args.push("-c".into());
        args.push(format!("{key}={value}").into());
    }
    args.push("--".into());
    args.push(src.into());
    args.push(bare.clone().into());
    git(root, &args)?;
    git(&bare, ["remote", "remove", "origin"])?;
    Ok(bare)
}

/// Commit subjects on `refs/heads/<branch>` of `bare`, newest first.
///
/// # Panics
/// When the branch does not exist or git fails.
pub fn remote_log(bare: &Path, branch: &str) -> Vec<String> {
    let out = must(
        "remote_log",
        git(
            bare,
            [
                "log",
                "--format=%s",
                format!("refs/heads/{branch}").as_str(),
                "--",
            ],
        ),
    );
    out.lines().map(str::to_string).collect()
}

/// The reflog of `refs/heads/<branch>` in `bare`, as the raw lines of
/// `logs/refs/heads/<branch>` (oldest first: `<old> <new> <ident> <time> <tz>\t<message>`).
/// Empty when there is no reflog.
pub fn reflog(bare: &Path, branch: &str) -> Vec<String> {
    match std::fs::read_to_string(bare.join("logs/refs/heads").join(branch)) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// The number of commits reachable from `refs/heads/<branch>` in `bare`.
///
/// # Panics
/// When the branch does not exist or git fails.
pub fn commit_count(bare: &Path, branch: &str) -> usize {
    let out = must(
        "commit_count",
        git(
            bare,
            [
                "rev-list",
                "--count",
                format!("refs/heads/{branch}").as_str(),
                "--",
            ],
        ),
    );
    must(
        "commit_count",
        out.parse::<usize>()
            .with_context(|| format!("rev-list --count printed {out:?}")),
    )
}

/// Bumped whenever [`generated_repo`]'s output changes, to invalidate old caches.
const GENERATOR_VERSION: u32 = 2;
/// The file inside a generated repository that records what it was generated from.
const STAMP_FILE: &str = "gitfleet-testkit-fixture";
/// One build at a time per process (tests run in parallel threads).
static GENERATE_LOCK: Mutex<()> = Mutex::new(());

/// A bare repository `<cache_dir>/<name>` with `files` files (spread over two levels of
/// directories, 2–14 KB of text each, about 8 KB on average: about 23 MiB for 3,000 files)
/// and `commits` commits on `main` (the first adds every file; each later one changes one
/// to three files), built with `git fast-import`, with the strict-remote config.
///
/// The result is cached: a repository left by an earlier call with the same `name`, `files`
/// and `commits` is reused as long as its refs are untouched (exactly `main`, at the
/// generated tip); otherwise it is rebuilt. Pushing to it therefore costs a rebuild on the
/// next call: push to a [`clone_bare`] of it instead.
///
/// # Panics
/// When git fails or the cache directory cannot be written.
pub fn generated_repo(cache_dir: &Path, name: &str, files: usize, commits: usize) -> PathBuf {
    let _guard = GENERATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    must(
        &format!("generated_repo {name}"),
        try_generated_repo(cache_dir, name, files, commits),
    )
}

fn stamp_params(files: usize, commits: usize) -> String {
    format!("generator={GENERATOR_VERSION}\nfiles={files}\ncommits={commits}\n")
}

/// Whether `repo` is an untouched repository generated with these parameters.
fn is_cached(repo: &Path, files: usize, commits: usize) -> bool {
    let Ok(stamp) = std::fs::read_to_string(repo.join(STAMP_FILE)) else {
        return false;
    };
    let Some(head) = stamp
        .strip_prefix(&stamp_params(files, commits))
        .and_then(|rest| rest.strip_prefix("head="))
        .map(str::trim)
    else {
        return false;
    };
    match git(repo, ["for-each-ref", "--format=%(refname) %(objectname)"]) {
        Ok(refs) => refs == format!("refs/heads/main {head}"),
        Err(_) => false,
    }
}

fn try_generated_repo(
    cache_dir: &Path,
    name: &str,
    files: usize,
    commits: usize,
) -> anyhow::Result<PathBuf> {
    let target = cache_dir.join(name);
    if is_cached(&target, files, commits) {
        return Ok(target);
    }
    std::fs::create_dir_all(cache_dir)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = cache_dir.join(format!(".{name}.building-{}-{nanos}", std::process::id()));
    let built = build_generated(&tmp, files, commits);
    if let Err(err) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err);
    }
    // Another process may have finished the same build meanwhile.
    if is_cached(&target, files, commits) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(target);
    }
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("removing stale {}", target.display()))?;
    }
    if let Err(err) = std::fs::rename(&tmp, &target) {
        let _ = std::fs::remove_dir_all(&tmp);
        if is_cached(&target, files, commits) {
            return Ok(target);
        }
        return Err(err).with_context(|| format!("moving the build into {}", target.display()));
    }
    Ok(target)
}

fn build_generated(repo: &Path, files: usize, commits: usize) -> anyhow::Result<()> {
    let parent = repo.parent().unwrap_or(Path::new("."));
    git(
        parent,
        [
            OsStr::new("init"),
            OsStr::new("--quiet"),
            OsStr::new("--bare"),
            OsStr::new("-b"),
            OsStr::new("main"),
            repo.as_os_str(),
        ],
    )?;
    configure_remote(repo)?;

    let mut child = Command::new("git")
        // Fast over small: light compression, no deltas (most blobs would be deltified
        // against an unrelated file anyway).
        .args([
            "-c",
            "pack.compression=1",
            "-c",
            "pack.depth=0",
            "fast-import",
            "--quiet",
        ])
        .env_clear()
        .envs(base_env())
        // glibc's malloc otherwise trims and regrows the heap for every large blob: over
        // 80,000 brk calls, half of fast-import's time. Ignored by other C libraries.
        .env(
            "GLIBC_TUNABLES",
            "glibc.malloc.trim_threshold=268435456:glibc.malloc.top_pad=67108864",
        )
        .current_dir(repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning git fast-import")?;
    let stdin = child.stdin.take().context("fast-import stdin")?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        write_stream(&mut out, files, commits)?;
        out.flush()
    });
    let output = child
        .wait_with_output()
        .context("waiting for git fast-import")?;
    let written = writer.join();
    if !output.status.success() {
        bail!(
            "git fast-import failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    match written {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err).context("writing the fast-import stream"),
        Err(_) => bail!("the fast-import stream writer panicked"),
    }
    let head = git(repo, ["rev-parse", "--verify", "refs/heads/main"])?;
    std::fs::write(
        repo.join(STAMP_FILE),
        format!("{}head={head}\n", stamp_params(files, commits)),
    )?;
    Ok(())
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "let", "fn", "match", "impl", "struct", "self", "return", "async", "await", "result", "error",
    "config", "sandbox", "worker", "queue", "branch", "commit", "push", "fetch", "clone", "mirror",
    "cache", "template", "job", "agent", "task", "remote", "index", "tree", "blob", "object",
    "pack", "delta", "lock", "retry", "backoff", "timeout", "metrics", "trace", "span", "value",
    "count", "limit", "offset", "buffer", "stream", "reader", "writer", "handle", "state",
    "update", "insert", "delete", "select", "from", "where", "into", "Some", "None", "Ok", "Err",
    "Vec", "String", "u64",
];

fn file_path(i: usize) -> String {
    format!("src/m{:02}/s{:02}/f{i:05}.txt", i % 25, (i / 25) % 12)
}

/// Code-like lines that generated files are made of (generating every file word by word
/// is slow in unoptimized test builds).
fn line_pool() -> Vec<String> {
    let mut rng = Rng(0x6c69_6e65_7300);
    (0..4096)
        .map(|_| {
            let mut line = " ".repeat(4 * rng.below(4));
            let words = 3 + rng.below(10);
            for w in 0..words {
                if w > 0 {
                    line.push(' ');
                }
                line.push_str(WORDS[rng.below(WORDS.len())]);
            }
            line.push_str(";\n");
            line
        })
        .collect()
}

/// The generated content of file `i` before any commit changed it: 2–14 KB of code-like
/// text.
fn base_content(i: usize, pool: &[String]) -> String {
    let mut rng = Rng(0x6769_7466_6c65_6574 ^ (i as u64).wrapping_mul(0x1000_0000_01b3));
    let size = 2048 + rng.below(12 * 1024);
    let mut text = String::with_capacity(size + 128);
    let _ = writeln!(text, "// {} (generated by gitfleet-testkit)", file_path(i));
    while text.len() < size {
        text.push_str(&pool[rng.below(pool.len())]);
    }
    text
}

fn write_data(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    writeln!(out, "data {}", data.len())?;
    out.write_all(data)?;
    out.write_all(b"\n")
}

fn write_stream(out: &mut impl Write, files: usize, commits: usize) -> std::io::Result<()> {
    out.write_all(b"feature done\n")?;
    let mut rng = Rng(0x5eed);
    let pool = line_pool();
    // Lines appended to a file by later commits.
    let mut changes: HashMap<usize, String> = HashMap::new();
    for c in 0..commits.max(1) {
        let time = 1_700_000_000u64 + 60 * c as u64;
        write!(out, "commit refs/heads/main\nmark :{}\n", c + 1)?;
        writeln!(out, "author {AUTHOR_NAME} <{AUTHOR_EMAIL}> {time} +0000")?;
        writeln!(out, "committer {AUTHOR_NAME} <{AUTHOR_EMAIL}> {time} +0000")?;
        if c == 0 {
            write_data(out, format!("initial import of {files} files\n").as_bytes())?;
            for i in 0..files {
                writeln!(out, "M 100644 inline {}", file_path(i))?;
                write_data(out, base_content(i, &pool).as_bytes())?;
            }
        } else {
            let touched = if files == 0 { 0 } else { 1 + rng.below(3) };
            let picked: Vec<usize> = (0..touched).map(|_| rng.below(files)).collect();
            let subject = match picked.first() {
                Some(&i) => format!("change {c}: update {}", file_path(i)),
                None => format!("change {c}"),
            };
            write_data(out, format!("{subject}\n").as_bytes())?;
            for i in picked {
                let extra = changes.entry(i).or_default();
                let _ = writeln!(extra, "let change_{c} = {};", rng.next() % 1_000_000);
                let mut content = base_content(i, &pool);
                content.push_str(extra);
                writeln!(out, "M 100644 inline {}", file_path(i))?;
                write_data(out, content.as_bytes())?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.write_all(b"done\n")
}
