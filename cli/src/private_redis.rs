//! A private `redis-server` for `gitfleet demo` on a machine where no Redis answers: its
//! own loopback port, directory and password, nothing persisted. Dropping the handle stops
//! it (the process killed and reaped, then its directory removed), on error paths too, so
//! a demo leaves no server behind.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a fresh server may take to answer PING. An empty Redis is up in milliseconds;
/// this is for a loaded machine.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Ports tried. A port is picked by binding port 0 and releasing it, so another process
/// may take it before redis-server binds it; then the next attempt picks another.
const PORT_ATTEMPTS: usize = 5;

/// Lines of redis-server's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 10;

/// A running private `redis-server`; dropping it stops the server and removes its
/// directory.
pub(crate) struct PrivateRedis {
    // Fields drop in order: the process is reaped before its directory goes.
    server: Server,
    password: String,
    #[allow(dead_code, reason = "held for its Drop, which removes the directory")]
    dir: TempDir,
}

impl PrivateRedis {
    /// Starts `redis-server` from `PATH` and waits until it answers PING.
    pub(crate) fn start() -> Result<Self, String> {
        Self::start_with(Path::new("redis-server"), free_port)
    }

    /// [`PrivateRedis::start`] with the program and the way to pick each attempt's port
    /// given, so tests can name a program that is not there or a port that is taken.
    /// Errors read as the end of a sentence that starts "no Redis answers at <url>, and".
    fn start_with(
        program: &Path,
        mut pick_port: impl FnMut() -> Result<u16, String>,
    ) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("gitfleet-demo-redis-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for a private redis-server: {e}"))?;
        // Other users of this machine can reach a loopback port, and through it could queue
        // jobs for the demo's workers; the password keeps them out. It goes in a file only
        // this user can read, since a command line is public (`ps`).
        let password = ulid::Ulid::new().to_string();
        let conf = dir.path().join("redis.conf");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&conf)
            .and_then(|mut f| writeln!(f, "requirepass {password}"))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let log = dir.path().join("redis.log");

        let mut why = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = pick_port()?;
            let mut server = Server::spawn(program, &conf, dir.path(), &log, port)?;
            match server.wait_ready(&password) {
                Ok(()) => {
                    return Ok(Self {
                        server,
                        password,
                        dir,
                    });
                }
                Err(NotReady::Exited(status)) => {
                    let tail = log_tail(&log);
                    why = format!(
                        "a private redis-server exited ({status}) before it answered; {tail}"
                    );
                    if !tail.contains("Address already in use") {
                        break;
                    }
                }
                Err(NotReady::Silent) => {
                    why = format!(
                        "a private redis-server did not answer PING within {} s; {}",
                        READY_WITHIN.as_secs(),
                        log_tail(&log)
                    );
                    break;
                }
            }
        }
        Err(why)
    }

    /// The URL to reach it, password included (never print it: print [`Self::addr`]).
    pub(crate) fn url(&self) -> String {
        url(self.server.port, &self.password)
    }

    /// `127.0.0.1:<port>`, safe to print.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }
}

fn url(port: u16, password: &str) -> String {
    format!("redis://:{password}@127.0.0.1:{port}")
}

/// A free loopback port, as the kernel hands one out for port 0.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port for a private redis-server: {e}"))
}

/// The last lines of the server's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "its log is empty".into();
    }
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!("the end of its log:\n{}", tail.join("\n"))
}

/// Why a server did not become ready.
enum NotReady {
    Exited(ExitStatus),
    Silent,
}

/// The redis-server process; dropping it kills and reaps it.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn spawn(
        program: &Path,
        conf: &Path,
        dir: &Path,
        log: &Path,
        port: u16,
    ) -> Result<Self, String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        // It stays in this process's group, so a Ctrl-C that ends the demo ends it too
        // (Drop does not run then).
        let child = Command::new(program)
            .arg(conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "redis-server is not installed: install it \
                     (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: \
                     `brew install redis`) or point GITFLEET_REDIS_URL at a Redis"
                    .to_string(),
                _ => format!("cannot run {}: {e}", program.display()),
            })?;
        Ok(Self { child, port })
    }

    /// Waits until the server answers PING (as the client will: with the password), it
    /// exits, or [`READY_WITHIN`] passes.
    fn wait_ready(&mut self, password: &str) -> Result<(), NotReady> {
        let client = redis::Client::open(url(self.port, password))
            .expect("a URL of a port and an alphanumeric password parses");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok_and(|p| p == "PONG") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(NotReady::Exited(status));
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Silent);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Nothing in it is worth keeping (no persistence), so no graceful shutdown:
        // SIGKILL, then reap, so no zombie stays either.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a process with this pid exists (`kill -0`, which sends nothing).
    fn process_exists(pid: u32) -> bool {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn a_private_redis_answers_with_its_password_and_leaves_nothing_behind_when_dropped() {
        let redis = PrivateRedis::start().unwrap();
        let (pid, port, dir) = (
            redis.server.child.id(),
            redis.server.port,
            redis.dir.path().to_path_buf(),
        );
        assert_eq!(redis.addr(), format!("127.0.0.1:{port}"));
        assert!(!redis.addr().contains(&redis.password));

        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
        assert_eq!(pong, "PONG");
        let mut anonymous = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let refused = redis::cmd("PING").query::<String>(&mut anonymous);
        assert!(refused.is_err(), "no password, no answer: {refused:?}");
        // Nothing is persisted: no RDB snapshots, no append-only file.
        let config: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query(&mut conn)
            .unwrap();
        assert_eq!(config, ["save", ""]);
        drop((conn, anonymous));
        assert!(process_exists(pid) && dir.exists());

        drop(redis);
        assert!(!process_exists(pid), "redis-server {pid} is still there");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still answers"
        );
        assert!(!dir.exists(), "{} is still there", dir.display());
    }

    #[test]
    fn without_redis_server_installed_it_says_how_to_get_one() {
        let err = PrivateRedis::start_with(
            Path::new("/nonexistent/gitfleet-test/redis-server"),
            free_port,
        )
        .err()
        .expect("no such program");
        for hint in [
            "redis-server is not installed",
            "sudo apt-get install redis-server",
            "brew install redis",
            "point GITFLEET_REDIS_URL at a Redis",
        ] {
            assert!(err.contains(hint), "{err:?} should say {hint:?}");
        }
    }

    #[test]
    fn a_server_that_exits_at_once_is_reported_with_its_exit_status() {
        // `false` takes the server's arguments and exits 1 without a word.
        let err = PrivateRedis::start_with(Path::new("false"), free_port)
            .err()
            .expect("false never answers PING");
        assert!(
            err.starts_with("a private redis-server exited (exit status: 1) before it answered"),
            "{err}"
        );
        assert!(err.contains("its log is empty"), "{err}");
    }

    #[test]
    fn a_server_that_fails_is_reported_with_the_end_of_its_log() {
        // `sh` takes the config file for a script and complains about its first line.
        let err = PrivateRedis::start_with(Path::new("sh"), free_port)
            .err()
            .expect("sh never answers PING");
        assert!(err.contains("the end of its log:\n"), "{err}");
        assert!(
            err.contains("requirepass") && err.contains("not found"),
            "{err}"
        );
    }

    #[test]
    fn a_port_taken_before_the_server_binds_it_is_skipped_for_another() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let mut picked = Vec::new();
        let redis = PrivateRedis::start_with(Path::new("redis-server"), || {
            let port = if picked.is_empty() {
                busy
            } else {
                free_port()?
            };
            picked.push(port);
            Ok(port)
        })
        .unwrap();
        assert_eq!(picked.len(), 2, "{picked:?}");
        assert_eq!(redis.addr(), format!("127.0.0.1:{}", picked[1]));
        let pong: String = redis::cmd("PING")
            .query(
                &mut redis::Client::open(redis.url())
                    .unwrap()
                    .get_connection()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(pong, "PONG");
    }
}
