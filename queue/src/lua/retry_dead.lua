-- gitfleet: send a dead job back to its queue by hand, with a fresh set of attempts.
-- KEYS[1] job hash
-- ARGV: key prefix, job id
-- Returns the queue name, or an error naming why it cannot be retried.
local k = KEYS[1]
local f = redis.call('HMGET', k, 'status', 'queue')
if not f[1] then return redis.error_reply('invalid_input: no job ' .. ARGV[2]) end
if f[1] ~= 'dead' then
  return redis.error_reply('invalid_input: job ' .. ARGV[2] .. ' is ' .. f[1] .. ', not dead')
end
redis.call('ZREM', ARGV[1] .. f[2] .. ':dead', ARGV[2])
redis.call('PERSIST', k)
redis.call('DEL', k .. ':wake')
redis.call('HSET', k, 'status', 'waiting', 'attempts', 0)
redis.call('HDEL', k, 'finished_at', 'started_at', 'worker')
redis.call('LPUSH', ARGV[1] .. f[2], ARGV[2])
tell(k)
return f[2]
