-- gitfleet: a worker's heartbeat.
-- KEYS[1] worker zset, KEYS[2] worker info hash
-- ARGV: worker id, 'register' (its first beat, which lists it) or 'beat' (any later one),
--       then field/value pairs for the info hash (the worker's: host, pid, version, queues,
--       concurrency, own_queue_concurrency); the script adds last_beat_ms, and started_ms
--       on registering, by Redis's clock
-- A later beat never lists the worker again: once recovery has declared it dead (reap.lua
-- sets its score to 0 at once and removes it when done), the beat fails with `fenced:`,
-- and the worker must stop serving (its jobs went to others, its locks were freed).
-- Returns {1 when a registering beat listed the worker (else 0), the time in ms a drain of
-- the worker was asked for ('' for none: see drain.lua)}: a worker learns of a drain, and
-- of its undoing, from its own beats, so no message can be missed.
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[2] ~= 'register' then
  local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not beat or tonumber(beat) <= 0 then
    return redis.error_reply('fenced: worker ' .. ARGV[1] .. ' was declared dead')
  end
end
local new = redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
if ARGV[2] == 'register' then redis.call('HSET', KEYS[2], 'started_ms', now_ms) end
if #ARGV > 2 then
  redis.call('HSET', KEYS[2], 'last_beat_ms', now_ms, unpack(ARGV, 3))
end
return {new, redis.call('HGET', KEYS[2], 'drain_requested_ms') or ''}
