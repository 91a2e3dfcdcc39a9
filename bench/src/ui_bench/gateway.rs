//! The gateway under measurement: the `gitfleet-gateway` binary of the same build (the one
//! beside this bench's executable, or `--gateway`), as its own process on a free loopback
//! port, on the bench's Redis prefix and database. Killed when dropped, so an error or an
//! interrupt anywhere in the bench leaves no gateway behind.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// How long the gateway may take to migrate, connect and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct GatewayProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// What the gateway is started on.
pub struct Settings<'a> {
    pub redis_url: &'a str,
    pub key_prefix: &'a str,
    pub database_url: &'a str,
    /// `GITFLEET_GATEWAY_UI_LIVE_MS`.
    pub live_ms: u64,
}

/// `gitfleet-gateway` beside the running executable (`target/release/` for
/// `cargo run --release`).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the bench's own path")?;
    let dir = exe.parent().context("the bench's directory")?;
    Ok(dir.join("gitfleet-gateway"))
}

impl GatewayProcess {
    /// Starts `binary` and waits for the line it prints once it listens
    /// (`{"addr": "127.0.0.1:<port>"}`).
    pub fn start(binary: &Path, s: &Settings<'_>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            binary.is_file(),
            "{}: no gateway binary (build it: cargo build --release -p gitfleet-gateway, or pass --gateway)",
            binary.display()
        );
        let mut child = Command::new(binary)
            .env("GITFLEET_GATEWAY_ADDR", "127.0.0.1:0")
            .env("GITFLEET_REDIS_URL", s.redis_url)
            .env("GITFLEET_KEY_PREFIX", s.key_prefix)
            .env("GITFLEET_DATABASE_URL", s.database_url)
            // Far above what the bench sends: the limiter runs but never refuses.
            .env("GITFLEET_GATEWAY_RATE_PER_SEC", "1000000")
            .env("GITFLEET_GATEWAY_RATE_BURST", "1000000")
            .env("GITFLEET_GATEWAY_UI_LIVE_MS", s.live_ms.to_string())
            .env("GITFLEET_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the gateway's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining, so the gateway never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = Self {
            child,
            base: String::new(),
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => anyhow::bail!("the gateway exited before it listened (its log is above)"),
            Err(_) => anyhow::bail!("the gateway did not listen within {START_TIMEOUT:?}"),
        };
        let addr: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the gateway's first line: {line:?}"))?;
        let addr = addr["addr"]
            .as_str()
            .with_context(|| format!("no addr in the gateway's first line: {line:?}"))?;
        process.base = format!("http://{addr}");
        Ok(process)
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
