//! Redis key housekeeping shared by sides: delete everything matching a
//! pattern with SCAN + UNLINK, never KEYS or FLUSH*.

use redis::aio::ConnectionManager;

/// Unlink every key matching `pattern` (a SCAN MATCH glob); returns how many
/// keys were removed. Callers must pass a pattern anchored on their unique
/// per-run namespace.
pub async fn unlink_matching(conn: &ConnectionManager, pattern: &str) -> anyhow::Result<u64> {
    anyhow::ensure!(
        pattern.len() > 8 && !pattern.starts_with('*'),
        "refusing to delete keys with an unanchored pattern {pattern:?}"
    );
    let mut conn = conn.clone();
    let mut cursor: u64 = 0;
    let mut removed: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            removed += n;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}
