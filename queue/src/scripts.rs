//! The Lua scripts, loaded once per process. Each is atomic and bounded in the work it does
//! per call; the ones a producer in another language needs are documented in
//! `docs/queue.md`.

use std::sync::LazyLock;

use redis::Script;

/// A script that changes a job's state, after `lua/tell.lua`'s `tell`, which logs each
/// change of a watched job.
macro_rules! with_tell {
    ($path:literal) => {
        concat!(include_str!("lua/tell.lua"), include_str!($path))
    };
}

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/enqueue.lua")));
pub(crate) static FETCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/fetch.lua")));
pub(crate) static FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/finish.lua")));
pub(crate) static PROMOTE: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/promote.lua")));
pub(crate) static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/heartbeat.lua")));
pub(crate) static REAP: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/reap.lua")));
pub(crate) static DRAIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/drain.lua")));
pub(crate) static GIVE_BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/give_back.lua")));
pub(crate) static CANCEL: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/cancel.lua")));
pub(crate) static RETRY_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/retry_dead.lua")));
pub(crate) static BULK: LazyLock<Script> =
    LazyLock::new(|| Script::new(with_tell!("lua/bulk.lua")));
pub(crate) static REGISTER_WAITER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 1 then \
           redis.call('HSET', KEYS[1], 'waiters', 1) return 1 end return 0",
    )
});
/// Sets a job's `waiters` flag (from then on its changes go to its event log) and answers
/// the id of the log's last entry (`0-0`: none), or nothing when there is no such job.
pub(crate) static WATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return false end \
         redis.call('HSET', KEYS[1], 'waiters', 1) \
         local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1) \
         if last[1] then return last[1][1] end return '0-0'",
    )
});
pub(crate) static SANDBOX_CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/sandbox_claim.lua")));
pub(crate) static SANDBOX_DROP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/sandbox_drop.lua")));
pub(crate) static STATS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/stats.lua")));
