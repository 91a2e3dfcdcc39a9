-- gitfleet: start jobs for a worker. The first id (if any) was already moved from the ready
-- list to the worker's held list by a blocking BLMOVE; up to ARGV[4] more are moved here.
-- KEYS[1] ready list, KEYS[2] the worker's held list, KEYS[3] the worker zset
-- A worker that is not listed as live (declared dead, or gone) is answered `fenced:`; one
-- asked to drain (its info hash has `drain_requested_ms`) is answered `draining:`.
-- A worker takes at most its fair share of the backlog (waiting jobs / live workers), so
-- a big backlog is fetched in batches while a few slow jobs spread over the fleet.
-- ARGV: key prefix, worker id, first id ('' = none), how many more to take
-- Returns a flat array: id, payload, attempts, max_attempts, timeout_ms, enqueued_at_us,
-- given_back (runs given back unfinished, which may have done their work), org ('' = none),
-- ...
local prefix, worker, first, more = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local beat = redis.call('ZSCORE', KEYS[3], worker)
if not beat or tonumber(beat) <= 0 then
  -- Declared dead (fenced, see reap.lua): it starts nothing. The id BLMOVE just handed it
  -- goes back to the front of its queue, unless recovery has taken it already.
  if first ~= '' and redis.call('HGET', prefix .. 'job:' .. first, 'status') == 'waiting'
      and redis.call('LREM', KEYS[2], 1, first) == 1 then
    redis.call('RPUSH', KEYS[1], first)
  end
  return redis.error_reply('fenced: worker ' .. worker .. ' was declared dead')
end
-- Asked to drain (drain.lua): it starts nothing more, from this instant, whatever it has
-- yet to learn of the drain; the id BLMOVE just handed it goes back the same way.
if redis.call('HEXISTS', prefix .. 'worker-info:' .. worker, 'drain_requested_ms') == 1 then
  if first ~= '' and redis.call('HGET', prefix .. 'job:' .. first, 'status') == 'waiting'
      and redis.call('LREM', KEYS[2], 1, first) == 1 then
    redis.call('RPUSH', KEYS[1], first)
  end
  return redis.error_reply('draining: worker ' .. worker .. ' was asked to drain')
end
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local out = {}

local function start(id, retaken)
  local k = prefix .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'worker', 'waiters')
  local attempts
  if retaken and f[1] == 'running' and f[2] == worker then
    -- This worker's earlier call started it but the reply was lost: hand it over again,
    -- as the same run.
    attempts = tonumber(redis.call('HGET', k, 'attempts'))
  elseif f[1] ~= 'waiting' then
    -- Expired or deleted while it waited, or not this list's to start: nothing to run.
    redis.call('LREM', KEYS[2], 1, id)
    return
  else
    attempts = redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HSET', k, 'status', 'running', 'started_at', now_us, 'worker', worker)
    tell(k, f[3] ~= false)
  end
  local d = redis.call('HMGET', k, 'payload', 'max_attempts', 'timeout_ms', 'enqueued_at',
    'given_back', 'org')
  out[#out + 1] = id
  out[#out + 1] = d[1] or ''
  out[#out + 1] = attempts
  out[#out + 1] = tonumber(d[2]) or 0
  out[#out + 1] = tonumber(d[3]) or 0
  out[#out + 1] = tonumber(d[4]) or 0
  out[#out + 1] = tonumber(d[5]) or 0
  out[#out + 1] = d[6] or ''
end

local live = math.max(1, redis.call('ZCARD', KEYS[3]))
more = math.min(more, math.floor(redis.call('LLEN', KEYS[1]) / live))

if first ~= '' then start(first, true) end
for _ = 1, more do
  local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not id then break end
  start(id, false)
end
return out
