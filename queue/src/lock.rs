//! A lock in Redis, held by one worker at a time, for the push protocol's `(repo, branch)`
//! serialisation. It is renewed while held and expires by itself; and since every lock is
//! listed under its owner (`locks:<worker id>`), recovering a dead worker frees its locks
//! at once (`reap.lua`) instead of after the TTL. Only its holder can release it.
//!
//! Fencing: the lock's value is its holder's token, `<worker id>:<ulid>` (reap.lua frees the
//! locks whose value starts with the dead worker's id). A worker that was paused past the
//! dead-after time may wake up believing it still holds a lock that was freed and taken by
//! another; so before acting under the lock (a `git push`) the holder calls
//! [`Lock::confirm`], one round trip that checks, atomically, that the value is still its
//! token and that it is not declared dead, and extends the lock. A worker declared dead
//! cannot take a lock at all.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::Script;
use tokio_util::sync::CancellationToken;

use super::{Queue, QueueError};

/// KEYS: lock, the owner's set of locks, the worker zset; ARGV: token, ttl ms, owner.
/// 1 taken, 0 held by another; `fenced:` when the owner is not a live worker.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local beat = redis.call('ZSCORE', KEYS[3], ARGV[3]) \
    if not beat or tonumber(beat) <= 0 then \
      return redis.error_reply('fenced: worker ' .. ARGV[3] .. ' was declared dead') end \
    if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
      redis.call('SADD', KEYS[2], KEYS[1]) return 1 end return 0",
    )
});
/// KEYS: lock, the worker zset; ARGV: token, ttl ms, owner. 1 still held (and extended),
/// 0 lost, -1 the owner was declared dead.
static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local beat = redis.call('ZSCORE', KEYS[2], ARGV[3]) \
    if not beat or tonumber(beat) <= 0 then return -1 end \
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1",
    )
});
const RELEASE: &str = "redis.call('SREM', KEYS[2], KEYS[1]) \
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/// A held lock. Released on [`Lock::release`]; if dropped instead, it expires by its TTL.
pub struct Lock {
    queue: Queue,
    key: String,
    token: String,
    owner: String,
    ttl: Duration,
    /// The owner's set of lock keys.
    owned: String,
    stop_renewing: CancellationToken,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Takes the lock `name` for `ttl` (renewed every third of it while held), waiting up
    /// to `wait` for it. `None` when it stayed taken; [`QueueError::Fenced`] when `owner`
    /// is not a live worker (declared dead, or never registered).
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
            // One round trip: taken and listed under its owner together.
            let taken: i64 = TAKE
                .key(&key)
                .key(&owned)
                .key(self.keys.workers())
                .arg(&token)
                .arg(ttl.as_millis() as u64)
                .arg(owner)
                .invoke_async(&mut conn)
                .await
                .map_err(QueueError::from_script)?;
            if taken == 1 {
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
                    tracing::warn!(lock = %k, "lost a lock while holding it (expired, or freed when this worker was declared dead)");
                    return;
                }
            }
        });
        Ok(Some(Lock {
            queue: self.clone(),
            key,
            token,
            owner: owner.to_string(),
            ttl,
            owned,
            stop_renewing,
        }))
    }
}

impl Lock {
    /// Confirms, right before acting under the lock, that this holder still has it (its
    /// token is the lock's value, and its owner has not been declared dead), and extends
    /// it by its TTL. One round trip. [`QueueError::LockLost`] when another may hold it
    /// now, [`QueueError::Fenced`] when the owner was declared dead: do not act then.
    pub async fn confirm(&self) -> Result<(), QueueError> {
        let mut conn = self.queue.conn();
        let held: i64 = CONFIRM
            .key(&self.key)
            .key(self.queue.keys().workers())
            .arg(&self.token)
            .arg(self.ttl.as_millis() as u64)
            .arg(&self.owner)
            .invoke_async(&mut conn)
            .await?;
        match held {
            1 => Ok(()),
            -1 => Err(QueueError::Fenced(format!(
                "worker {} was declared dead; its locks were freed",
                self.owner
            ))),
            _ => Err(QueueError::LockLost(format!(
                "lock {} is no longer held by worker {} (it expired, or was freed and taken by another)",
                self.key, self.owner
            ))),
        }
    }

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
