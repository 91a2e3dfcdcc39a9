//! A `redis-server` of the test's own on a free loopback port: for the tests that kill and
//! restart Redis, give it users of their own (`--aclfile`), or need a password on it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::eventually;

/// A `redis-server` of the test's own, on a free loopback port, writing every change to its
/// append-only file before answering (`appendfsync always`), so that it can be killed and
/// restarted without losing anything it acknowledged.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Its users (`--aclfile`), if not the default user alone.
    aclfile: Option<PathBuf>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server whose default user needs `password` (`redis://:<password>@…`): for a
    /// test that shows a password in a Redis URL is never printed.
    pub async fn start_with_password(password: &str) -> Self {
        Self::start_with(Some(&format!("user default on >{password} ~* &* +@all\n"))).await
    }

    /// A server whose users are those of `aclfile` (the text of one, written beside its
    /// data).
    pub async fn start_with_acl(aclfile: &str) -> Self {
        Self::start_with(Some(aclfile)).await
    }

    async fn start_with(acl: Option<&str>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("gitfleet-redis-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("create the Redis directory");
        let aclfile = acl.map(|text| {
            let path = dir.join("users.acl");
            std::fs::write(&path, text).expect("write the ACL file");
            path
        });
        let mut server = Self {
            port,
            dir,
            child: None,
            aclfile,
        };
        server.run().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's URL for the default user with `password` (right or wrong).
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server: no shutdown, no last save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL redis-server");
            child.wait().expect("reap redis-server");
        }
    }

    /// Starts the server again on the same port and directory (so from its append-only
    /// file), and returns once it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(
                self.aclfile
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("--aclfile"), f.as_os_str()]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server (is it on PATH?)");
        self.child = Some(child);
        let url = self.url();
        let log = self.dir.join("redis.log");
        eventually(
            format!(
                "redis-server at {url} answers PING (log: {})",
                log.display()
            ),
            Duration::from_secs(10),
            async || {
                let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                match redis::cmd("PING").query_async::<String>(&mut conn).await {
                    Ok(pong) => Ok(pong),
                    // With its default user off, it answers: that is all this waits for.
                    Err(e) if e.code() == Some("NOAUTH") => Ok(String::new()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
