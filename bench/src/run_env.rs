//! What the bench binaries share about the run: the Redis they may load (loopback only),
//! the commit and the load average they print, and the signals that stop them cleanly.

/// Refuses a Redis URL that is not on loopback: a bench loads whatever it reaches.
pub fn ensure_loopback(url: &str) -> anyhow::Result<()> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.rsplit('@').next())
        .and_then(|hostport| hostport.split([':', '/']).next())
        .unwrap_or("");
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "{url}: the bench only runs against a Redis on loopback"
    );
    Ok(())
}

/// `git describe --always --dirty` of the workspace measured.
pub fn workspace_commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The 1-minute load average (the machine is shared: anything above its cores is someone
/// else's work competing with the run).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Resolves on SIGINT or SIGTERM, naming the signal.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
