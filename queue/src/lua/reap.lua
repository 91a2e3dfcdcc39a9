-- gitfleet: recover from one dead (or departing) worker, a bounded chunk per call.
-- Jobs it held go back to the front of their queues; jobs waiting in its own queue can never
-- run (its sandboxes are gone) and are answered sandbox_not_found; its locks are freed.
-- KEYS[1] worker zset, KEYS[2] its held list, KEYS[3] its own ready list,
-- KEYS[4] its own delayed zset, KEYS[5] its own dead zset, KEYS[6] its info hash,
-- KEYS[7] the queue set, KEYS[8] its own done zset, KEYS[9] its own cancelled zset
-- ARGV: key prefix, worker id, chunk size, dead_ttl_s,
--       only_if_older_than_ms (0 = unconditionally: the worker itself is leaving),
--       mode: 'leave' (the default: all of the above, then the worker is unlisted),
--       'drain' (a draining worker: only the jobs waiting in its own queue are answered;
--       what it holds, its locks and its sandboxes are its own still) or 'drained' (a
--       drained worker that stays listed: its own queue answered, its locks freed, its
--       sandboxes out of the registry; nothing it holds is touched)
-- Returns {requeued, answered, finished (1 when nothing is left), jobs}: jobs lists each job
-- answered here (at most chunk size of them), 12 fields apiece: id, op, queue, attempts,
-- max_attempts, enqueued_at_us, finished_at_us, message, then org, agent_id, task_id,
-- sandbox_id ('' where absent; stored apart by the enqueue script, so no payload is decoded
-- here), for the caller to write its final row in the durable record. The worker's
-- sandboxes leave the sandbox registry (their hashes, its set, their organizations' sets).
local prefix, worker, limit, dead_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local cutoff = tonumber(ARGV[5])
local mode = ARGV[6] or 'leave'
if mode == '' then mode = 'leave' end
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = math.floor(now_us / 1000)
if cutoff > 0 then
  local beat = redis.call('ZSCORE', KEYS[1], worker)
  if beat and tonumber(beat) > now_ms - cutoff then
    return {0, 0, 1, {}} -- it came back to life
  end
  -- Declared dead from here on, whatever it does later (fencing): score 0 marks it until it
  -- is removed below, and its beats, fetches, finishes and locks fail `fenced:`. So a
  -- recovery begun is finished, even when it takes several calls and the worker wakes up.
  if beat then redis.call('ZADD', KEYS[1], 0, worker) end
end
local requeued, answered, budget = 0, 0, limit
local jobs = {}

while mode == 'leave' and budget > 0 do
  local id = redis.call('RPOP', KEYS[2])
  if not id then break end
  budget = budget - 1
  local k = prefix .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'worker', 'queue')
  -- 'waiting': taken by BLMOVE but never started.
  if (f[1] == 'running' and f[2] == worker) or f[1] == 'waiting' then
    redis.call('HSET', k, 'status', 'waiting')
    redis.call('HDEL', k, 'worker')
    -- RPUSH: consumers take from the right, so a rescued job runs next.
    redis.call('RPUSH', prefix .. f[3], id)
    tell(k)
    requeued = requeued + 1
  end
end

local message = 'worker ' .. worker .. ' is gone; its sandboxes are gone with it'
if mode ~= 'leave' then
  message = 'worker ' .. worker .. ' is draining; its sandboxes are going away'
end
local function str(v)
  if type(v) == 'string' or type(v) == 'number' then return tostring(v) end
  return ''
end
local function answer(id)
  local k = prefix .. 'job:' .. id
  if redis.call('EXISTS', k) == 1 then
    local f = redis.call('HMGET', k, 'op', 'queue', 'attempts', 'max_attempts', 'enqueued_at',
      'org', 'agent_id', 'task_id', 'sandbox_id')
    redis.call('HSET', k, 'status', 'dead', 'finished_at', now_us, 'error',
      cjson.encode({kind = 'sandbox_not_found', message = message}))
    redis.call('ZADD', KEYS[5], now_ms, id)
    redis.call('EXPIRE', k, dead_ttl)
    tell(k, nil, dead_ttl)
    if redis.call('HEXISTS', k, 'waiters') == 1 then
      redis.call('RPUSH', k .. ':wake', 'dead')
      redis.call('EXPIRE', k .. ':wake', dead_ttl)
    end
    answered = answered + 1
    for _, v in ipairs({id, str(f[1]), str(f[2]), str(f[3]), str(f[4]), str(f[5]), now_us,
        message, str(f[6]), str(f[7]), str(f[8]), str(f[9])}) do
      jobs[#jobs + 1] = v
    end
  end
end
while budget > 0 do
  local id = redis.call('RPOP', KEYS[3])
  if not id then break end
  budget = budget - 1
  answer(id)
end
while budget > 0 do
  local ids = redis.call('ZRANGE', KEYS[4], 0, math.min(budget, 100) - 1)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[4], id)
    answer(id)
  end
  budget = budget - #ids
end

if mode == 'drain' then
  local left = redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  return {requeued, answered, left == 0 and 1 or 0, jobs}
end

-- Locks it held (a push cut short) are freed now, not when their TTL runs out.
local locks = prefix .. 'locks:' .. worker
for _, key in ipairs(redis.call('SMEMBERS', locks)) do
  local v = redis.call('GET', key)
  if v and string.sub(v, 1, #worker + 1) == worker .. ':' then
    redis.call('DEL', key)
  end
end
redis.call('DEL', locks)

-- Its sandboxes are gone: out of the registry, and no longer counted for their orgs.
local owned = prefix .. 'sandboxes:' .. worker
for _, id in ipairs(redis.call('SMEMBERS', owned)) do
  local org = redis.call('HGET', prefix .. 'sandbox:' .. id, 'org')
  if org then redis.call('SREM', prefix .. 'org-sandboxes:' .. org, id) end
  redis.call('DEL', prefix .. 'sandbox:' .. id)
end
redis.call('DEL', owned)

if mode == 'drained' then
  -- It stays listed, beating, taking nothing, until it is undrained or stops.
  local left = redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4])
  return {requeued, answered, left == 0 and 1 or 0, jobs}
end

local left = redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3]) + redis.call('ZCARD', KEYS[4])
if left == 0 then
  redis.call('ZREM', KEYS[1], worker)
  redis.call('DEL', KEYS[6])
  -- Its queue is gone with it: unlisted, and its bookkeeping expires with its records.
  redis.call('SREM', KEYS[7], 'worker:' .. worker)
  redis.call('EXPIRE', KEYS[5], dead_ttl)
  redis.call('EXPIRE', KEYS[8], dead_ttl)
  redis.call('EXPIRE', KEYS[9], dead_ttl)
  return {requeued, answered, 1, jobs}
end
return {requeued, answered, 0, jobs}
