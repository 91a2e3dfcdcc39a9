//! Process plumbing shared by the servers: free loopback ports, and killing a whole
//! process group (a server and every child it forked) without `unsafe`.

use std::net::TcpListener;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A loopback port that was free a moment ago (bound on port 0, read, released). Another
/// process may take it before the caller binds it, so callers retry on failure.
pub(crate) fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Sends SIGKILL to the process group `pgid` (a child started with `process_group(0)` leads
/// a group whose id is its pid). A group that is already gone is not an error.
pub(crate) fn kill_group(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 {
        return;
    }
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
}

/// Kills a process group when dropped, unless disarmed first. Held while a child that leads
/// its own group is running and not yet reaped, so its pid (and group id) cannot have been
/// reused when the guard fires.
pub(crate) struct GroupKillGuard {
    pgid: Option<u32>,
}

impl GroupKillGuard {
    pub(crate) fn new(pgid: Option<u32>) -> Self {
        Self { pgid }
    }

    /// The group exited normally (and was reaped): nothing left to kill.
    pub(crate) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKillGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }
}
