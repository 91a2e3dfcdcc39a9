//! A lock in Redis, held by one worker at a time, for the push protocol's `(repo, branch)`
//! serialisation. It is renewed while held and expires by itself; and since every lock is
//! listed under its owner (`locks:<worker id>`), recovering a dead worker frees its locks
//! at once (`reap.lua`) instead of after the TTL. Only its holder can release it.

use std::time::{Duration, Instant};

use redis::Script;
use tokio_util::sync::CancellationToken;

use super::{Queue, QueueError};

const RELEASE: &str = "redis.call('SREM', KEYS[2], KEYS[1]) \
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// A held lock. Released on [`Lock::release`]; if dropped instead, it expires by its TTL.
pub struct Lock {
    queue: Queue,
    key: String,
    token: String,
    /// The owner's set of lock keys.
    owned: String,
    stop_renewing: CancellationToken,
}

impl Queue {
    /// Takes the lock `name` for `ttl` (renewed every third of it while held), waiting up
    /// to `wait` for it. `None` when it stayed taken.
    pub async fn lock(
        &self,
        owner: &str,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Lock>, QueueError> {
        let key = format!("{}lock:{name}", self.keys.prefix());
        // The owner in the value: reap.lua frees only locks still held by the dead worker.
        let token = format!("{owner}:{}", ulid::Ulid::new());
        let owned = format!("{}locks:{owner}", self.keys.prefix());
        let deadline = Instant::now() + wait;
        let mut conn = self.conn();
        let mut pause = Duration::from_millis(5);
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await?;
            if taken.is_some() {
                let _: () = redis::cmd("SADD")
                    .arg(&owned)
                    .arg(&key)
                    .query_async(&mut conn)
                    .await?;
                break;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let stop_renewing = CancellationToken::new();
        let (queue, k, t, stop) = (
            self.clone(),
            key.clone(),
            token.clone(),
            stop_renewing.clone(),
        );
        tokio::spawn(async move {
            let renew = Script::new(RENEW);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                let mut conn = queue.conn();
                let kept: Result<i64, _> = renew
                    .key(&k)
                    .arg(&t)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await;
                if matches!(kept, Ok(0)) {
                    tracing::warn!(lock = %k, "lost a lock while holding it (expired)");
                    return;
                }
            }
        });
        Ok(Some(Lock {
            queue: self.clone(),
            key,
            token,
            owned,
            stop_renewing,
        }))
    }
}

impl Lock {
    pub async fn release(self) -> Result<(), QueueError> {
        self.stop_renewing.cancel();
        let mut conn = self.queue.conn();
        let _: i64 = Script::new(RELEASE)
            .key(&self.key)
            .key(&self.owned)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_renewing.cancel();
    }
}
