//! A worker child process: spawned from this very binary in `worker` mode,
//! killed (SIGKILL) and reaped when its guard is dropped — on success, error
//! or panic alike. Also samples the child's CPU time from `/proc/<pid>/stat`.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// Guard owning one running worker process.
pub struct WorkerProcess {
    child: Child,
    log_path: PathBuf,
}

impl WorkerProcess {
    /// Spawn `current_exe() <args>`; the child's stdout+stderr go to a
    /// temporary log file so its last words can be reported if it dies.
    pub fn spawn(args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating queue-bench binary")?;
        let log_path = std::env::temp_dir().join(format!(
            "gfbench-worker-{}-{}.log",
            std::process::id(),
            ulid::Ulid::new()
        ));
        let log = File::create(&log_path).context("creating worker log file")?;
        let log_err = log.try_clone()?;
        let child = Command::new(exe)
            .args(args)
            // Keep the log to the error itself, no anyhow backtrace.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .context("spawning worker process")?;
        Ok(Self { child, log_path })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(description)` if the worker has exited (it never should on its
    /// own), including the tail of its log.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("worker exited ({status}): {}", self.log_tail())),
            Ok(None) => None,
            Err(e) => Some(format!("worker state unknown: {e}")),
        }
    }

    /// The most telling line of the worker's log: the last one mentioning
    /// an error, else the last non-empty one; "" if none.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines = || log.lines().rev().map(str::trim).filter(|l| !l.is_empty());
        lines()
            .find(|l| l.to_ascii_lowercase().contains("error"))
            .or_else(|| lines().next())
            .map(|l| l.chars().take(300).collect())
            .unwrap_or_default()
    }

    /// Total user+system CPU time consumed so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .context("reading /proc/<pid>/stat")?;
        let ticks = parse_utime_stime(&stat).context("parsing /proc/<pid>/stat")?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_sec() as f64,
        ))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // SIGKILL then reap; both are no-ops on an already-dead child.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// utime + stime (fields 14 and 15) in clock ticks. The comm field may contain
/// spaces and parentheses, so fields are counted after the last ')'.
fn parse_utime_stime(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); utime is field 14 => index 11 here.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)` via `getconf CLK_TCK` (the workspace denies
/// `unsafe`, which a direct libc call would need); 100 if that fails, which
/// is the value on every mainstream Linux.
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let stat = "1234 (queue (bench) x) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 4 0 1000 0 0";
        assert_eq!(parse_utime_stime(stat), Some(300));
    }
}
