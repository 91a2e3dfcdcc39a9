-- gitfleet: cancel a job that has not started: take it out of its queue and finish it as
-- `cancelled`. Atomic with fetch.lua, so a job either starts or is cancelled, never both: a
-- job BLMOVE already moved to a worker's held list but not yet started is still `waiting`,
-- and the worker's start (fetch.lua) drops an id whose status is no longer `waiting`.
-- KEYS[1] job hash        <prefix>job:<id>
-- KEYS[2] ready list      <prefix><queue>
-- KEYS[3] delayed zset    <prefix><queue>:delayed
-- KEYS[4] cancelled zset  <prefix><queue>:cancelled
-- KEYS[5] wake list       <prefix>job:<id>:wake
-- ARGV: job id, queue (the job's: the caller read it from the hash; a job's queue never
--       changes), result_ttl_s (how long the cancelled record is kept, as a done job's),
--       org ('' = a job of any organization; else only that organization's job: another's
--       is answered as missing, so an id is no key to another tenant's job)
-- Returns false (nil) when there is no such job (never was, expired, another
-- organization's), else {was ('waiting' | 'delayed'), op, queue, attempts, max_attempts,
-- enqueued_at_us, finished_at_us, org, agent_id, task_id, sandbox_id, given_back} ('' where
-- absent),
-- for the caller to write the job's final row. A job that is running, or finished, is
-- refused with a 'conflict:' error naming why.
local id, queue, ttl, org = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local f = redis.call('HMGET', KEYS[1], 'status', 'queue', 'org', 'worker')
if not f[1] or f[2] ~= queue then return false end
if org ~= '' and f[3] ~= org then return false end
local was = f[1]
if was == 'running' then
  return redis.error_reply('conflict: job ' .. id .. ' is running on worker ' ..
    tostring(f[4]) .. '; only a waiting or delayed job can be cancelled')
end
if was ~= 'waiting' and was ~= 'delayed' then
  return redis.error_reply('conflict: job ' .. id .. ' is already ' .. was)
end

local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = math.floor(now_us / 1000)
if was == 'waiting' then
  -- Not found there when a worker's BLMOVE took it an instant ago: that worker's start
  -- finds it cancelled and drops it. LREM walks the list: O(backlog) at worst.
  redis.call('LREM', KEYS[2], 1, id)
else
  redis.call('ZREM', KEYS[3], id)
end
-- The last run's error (a retry waiting out its backoff) stays in that run's history; the
-- job itself did not fail.
redis.call('HDEL', KEYS[1], 'error')
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', now_us)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[4], now_ms, id)
-- Forget cancelled jobs whose records have expired, so counts stay true.
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms - ttl * 1000)
tell(KEYS[1], nil, ttl)
if redis.call('HEXISTS', KEYS[1], 'waiters') == 1 then
  redis.call('RPUSH', KEYS[5], 'cancelled')
  redis.call('EXPIRE', KEYS[5], ttl)
end

local d = redis.call('HMGET', KEYS[1], 'op', 'attempts', 'max_attempts', 'enqueued_at',
  'agent_id', 'task_id', 'sandbox_id', 'given_back')
return {was, d[1] or '', queue, tonumber(d[2]) or 0, tonumber(d[3]) or 0,
  tonumber(d[4]) or 0, now_us, f[3] or '', d[5] or '', d[6] or '', d[7] or '',
  tonumber(d[8]) or 0}
