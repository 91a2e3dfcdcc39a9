-- gitfleet: a live worker gives back jobs it holds but will not run (shutting down).
-- KEYS[1] its held list
-- ARGV: key prefix, worker id, chunk size
-- Returns {requeued, left}.
local prefix, worker, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = 0
for _ = 1, limit do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  local k = prefix .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'worker', 'queue')
  if f[1] == 'waiting' then
    -- Taken by BLMOVE but never started.
    redis.call('RPUSH', prefix .. f[3], id)
    n = n + 1
  elseif f[1] == 'running' and f[2] == worker then
    -- The run never finished: it does not count as an attempt.
    redis.call('HINCRBY', k, 'attempts', -1)
    redis.call('HSET', k, 'status', 'waiting')
    redis.call('HDEL', k, 'worker', 'started_at')
    redis.call('RPUSH', prefix .. f[3], id)
    n = n + 1
  end
end
return {n, redis.call('LLEN', KEYS[1])}
