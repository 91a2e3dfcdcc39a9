//! Deleting every key under a prefix: SCAN + UNLINK a batch at a time, never KEYS or
//! FLUSH*, so Redis is never blocked and whatever else shares the server is left alone.
//! For tests, benchmarks and the demo, which run under a prefix of their own. One loop in
//! two forms: async for the queue and tools, blocking for clean-up in `Drop`.

use super::{CHUNK, Queue, QueueError};

impl Queue {
    /// Every Redis key under this queue's prefix, deleted; returns how many. For tests and
    /// benchmarks that run under a prefix of their own; never call it on a live fleet's
    /// prefix.
    pub async fn purge_prefix(&self) -> Result<u64, QueueError> {
        purge_prefix(&mut self.conn(), self.keys.prefix()).await
    }
}

/// Deletes every key whose name starts with `prefix`; returns how many were removed. An
/// empty prefix (every key on the server) is refused.
pub async fn purge_prefix(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    prefix: &str,
) -> Result<u64, QueueError> {
    let pattern = pattern(prefix)?;
    let mut cursor: u64 = 0;
    let mut removed: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = scan(cursor, &pattern).query_async(conn).await?;
        if !keys.is_empty() {
            removed += unlink(&keys).query_async::<u64>(conn).await?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// [`purge_prefix`] on a blocking connection, for clean-up that runs in `Drop` (where no
/// async code can be awaited).
pub fn purge_prefix_blocking(
    conn: &mut impl redis::ConnectionLike,
    prefix: &str,
) -> Result<u64, QueueError> {
    let pattern = pattern(prefix)?;
    let mut cursor: u64 = 0;
    let mut removed: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = scan(cursor, &pattern).query(conn)?;
        if !keys.is_empty() {
            removed += unlink(&keys).query::<u64>(conn)?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// The SCAN MATCH glob for `prefix`.
fn pattern(prefix: &str) -> Result<String, QueueError> {
    if prefix.is_empty() || prefix.starts_with('*') {
        return Err(QueueError::invalid(format!(
            "refusing to delete keys under the unanchored prefix {prefix:?}"
        )));
    }
    Ok(format!("{prefix}*"))
}

/// One step of the scan: up to about [`CHUNK`] names per reply, so each UNLINK is small.
fn scan(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(CHUNK);
    cmd
}

/// Frees the keys' memory off Redis's main thread (unlike DEL), so a large purge does not
/// stall the server for other clients.
fn unlink(keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("UNLINK");
    cmd.arg(keys);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_is_anchored_on_its_prefix() {
        assert_eq!(pattern("gitfleet-test:").unwrap(), "gitfleet-test:*");
        assert!(pattern("").is_err());
        assert!(pattern("*:jobs").is_err());
    }
}
