//! Cleaning up after a test that worked under a Redis key prefix of its own.

/// Deletes every key under `prefix` on the Redis at `url`, with the queue's own SCAN +
/// UNLINK ([`gitfleet_queue::purge_prefix_blocking`]). Synchronous, so it can run in `Drop`
/// (cleanup must happen even when an assertion failed); errors are ignored: a test that
/// cannot reach Redis has failed already.
pub fn purge_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let _ = gitfleet_queue::purge_prefix_blocking(&mut conn, prefix);
}
