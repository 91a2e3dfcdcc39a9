//! A test's own corner of Redis: a [`gitfleet_queue::Queue`] under a fresh key prefix
//! (`test-<what>-<ulid>:`), every key under it deleted when the test ends, pass or fail. So
//! tests share one Redis and run side by side without seeing each other's keys.

use gitfleet_queue::{Queue, QueueConfig};
use redis::aio::MultiplexedConnection;

/// The Redis tests share: `GITFLEET_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("GITFLEET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A queue under a key prefix of its own; dropping it deletes every key under the prefix
/// (SCAN + UNLINK, see [`crate::redis_keys`]). Whatever writes under the prefix (workers,
/// processes) must be stopped before it drops, or it writes keys back after the purge:
/// [`crate::Fleet`] stops its workers first.
pub struct TestQueue {
    pub queue: Queue,
    config: QueueConfig,
}

impl TestQueue {
    /// A fresh prefix `test-<what>-<ulid>:` on the shared Redis ([`redis_url`]).
    pub async fn new(what: &str) -> Self {
        Self::with_config(what, |_| {}).await
    }

    /// [`TestQueue::new`], with `change` applied to the queue's configuration (a Redis of
    /// the test's own, limits); a prefix `change` sets is used, and purged, as it is.
    pub async fn with_config(what: &str, change: impl FnOnce(&mut QueueConfig)) -> Self {
        // Lower case: the prefix also names directories and shows in logs.
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let mut config = QueueConfig {
            redis_url: redis_url(),
            key_prefix: format!("test-{what}-{id}:"),
            ..Default::default()
        };
        change(&mut config);
        let queue = Queue::connect(config.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot reach Redis at {}: {e}", config.redis_url));
        Self { queue, config }
    }

    /// The key prefix, with its trailing `:`.
    pub fn prefix(&self) -> &str {
        &self.config.key_prefix
    }

    /// The configuration the queue was opened with: what a worker process or a CLI run
    /// needs to work under the same prefix.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// A connection of its own, for reading and writing Redis by hand.
    pub async fn redis(&self) -> MultiplexedConnection {
        redis::Client::open(self.config.redis_url.as_str())
            .expect("a valid Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis")
    }

    /// Makes `worker`'s last heartbeat look `ago` old (by Redis's clock, as recovery reads
    /// it), as a paused or dead process's does to the survivors, without waiting that long.
    pub async fn silence(&self, worker: &str, ago: std::time::Duration) {
        use redis::AsyncCommands;
        let mut conn = self.redis().await;
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        let now_ms = secs * 1000 + micros / 1000;
        let beat = now_ms.saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX));
        let _: () = conn
            .zadd(self.queue.keys().workers(), worker, beat)
            .await
            .expect("ZADD the worker's heartbeat");
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        crate::redis_keys::purge_prefix(&self.config.redis_url, &self.config.key_prefix);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use gitfleet_client::JobSpec;
    use gitfleet_queue::EnqueueOptions;

    use super::*;

    /// The keys under `prefix`, read on a connection of its own.
    pub(crate) fn keys_under(url: &str, prefix: &str) -> Vec<String> {
        let mut conn = redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect to Redis");
        redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut conn)
            .expect("KEYS")
    }

    #[tokio::test]
    async fn every_key_under_the_prefix_is_gone_once_the_test_queue_drops() {
        let t = TestQueue::new("testkit").await;
        assert!(
            t.prefix().starts_with("test-testkit-") && t.prefix().ends_with(':'),
            "{}",
            t.prefix()
        );
        let other = TestQueue::new("testkit").await;
        assert_ne!(
            t.prefix(),
            other.prefix(),
            "each queue has a prefix of its own"
        );
        t.queue
            .enqueue(
                "jobs",
                &JobSpec::new("echo", serde_json::json!({})),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap();
        let mut conn = t.redis().await;
        let _: () = redis::cmd("SET")
            .arg(format!("{}by-hand", t.prefix()))
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let other_key = format!("{}kept", other.prefix());
        let _: () = redis::cmd("SET")
            .arg(&other_key)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let (url, prefix) = (t.config().redis_url.clone(), t.prefix().to_string());
        assert!(keys_under(&url, &prefix).len() >= 2);

        drop(t);
        assert_eq!(keys_under(&url, &prefix), Vec::<String>::new());
        assert_eq!(
            keys_under(&url, other.prefix()),
            [other_key],
            "another test's keys are left alone"
        );
    }
}
