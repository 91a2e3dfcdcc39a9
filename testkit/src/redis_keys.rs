//! Cleaning up after a test that worked under a Redis key prefix of its own.

use std::time::Duration;

/// How long one connect or one command of the purge may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Deletes every key under `prefix` on the Redis at `url`, with the queue's own SCAN +
/// UNLINK ([`gitfleet_queue::purge_prefix_blocking`]). Synchronous, so it can run in `Drop`
/// (cleanup must happen even when an assertion failed); errors are ignored: a test that
/// cannot reach Redis has failed already. Bounded in time, so a Redis the test stopped (or
/// one that hangs) cannot hang the test's teardown.
pub fn purge_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(TIMEOUT) else {
        return;
    };
    if conn.set_read_timeout(Some(TIMEOUT)).is_err()
        || conn.set_write_timeout(Some(TIMEOUT)).is_err()
    {
        return;
    }
    let _ = gitfleet_queue::purge_prefix_blocking(&mut conn, prefix);
}
