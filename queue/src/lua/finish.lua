-- gitfleet: acknowledge a batch of finished runs for one worker.
-- KEYS[1] the worker's held list, KEYS[2] the worker zset
-- ARGV: key prefix, worker id, done_ttl_s, dead_ttl_s, then 4 per job:
--       id, outcome ('done' | 'retry' | 'dead'), data (result or error JSON), retry_delay_ms
-- A run whose job was meanwhile handed to another worker (this one was taken for dead) is
-- dropped from the held list and otherwise ignored: the job's current owner finishes it.
-- A worker declared dead (fenced, see reap.lua) records nothing at all: `fenced:`. What it
-- held is recovery's to give back, and a run it finished late runs again (a push or change
-- finds its commit by its trailer then).
-- Returns the number of jobs recorded.
local prefix, worker = ARGV[1], ARGV[2]
local beat = redis.call('ZSCORE', KEYS[2], worker)
if not beat or tonumber(beat) <= 0 then
  return redis.error_reply('fenced: worker ' .. worker .. ' was declared dead')
end
local done_ttl, dead_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = math.floor(now_us / 1000)
local recorded, queues = 0, {}

for i = 5, #ARGV, 4 do
  local id, outcome, data, delay = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local k = prefix .. 'job:' .. id
  redis.call('LREM', KEYS[1], 1, id)
  local f = redis.call('HMGET', k, 'status', 'worker', 'queue', 'waiters')
  if f[1] == 'running' and f[2] == worker then
    local q = f[3]
    queues[q] = true
    if outcome == 'done' then
      redis.call('HSET', k, 'status', 'done', 'finished_at', now_us, 'result', data)
      redis.call('HDEL', k, 'error')
      redis.call('ZADD', prefix .. q .. ':done', now_ms, id)
      redis.call('EXPIRE', k, done_ttl)
    elseif outcome == 'retry' then
      redis.call('HSET', k, 'status', 'delayed', 'error', data, 'run_at', now_us + delay * 1000)
      redis.call('ZADD', prefix .. q .. ':delayed', now_ms + delay, id)
    else
      redis.call('HSET', k, 'status', 'dead', 'finished_at', now_us, 'error', data)
      redis.call('ZADD', prefix .. q .. ':dead', now_ms, id)
      redis.call('EXPIRE', k, dead_ttl)
    end
    tell(k, f[4] ~= false, outcome == 'done' and done_ttl or dead_ttl)
    if outcome ~= 'retry' and f[4] then
      local w = k .. ':wake'
      redis.call('RPUSH', w, outcome)
      redis.call('EXPIRE', w, outcome == 'done' and done_ttl or dead_ttl)
    end
    recorded = recorded + 1
  end
end
-- Forget finished jobs whose records have expired, so counts stay true.
for q in pairs(queues) do
  redis.call('ZREMRANGEBYSCORE', prefix .. q .. ':done', '-inf', now_ms - done_ttl * 1000)
  redis.call('ZREMRANGEBYSCORE', prefix .. q .. ':dead', '-inf', now_ms - dead_ttl * 1000)
end
return recorded
