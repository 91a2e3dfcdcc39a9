-- gitfleet: a live worker gives back held jobs it is not running: ids whose fetch reply
-- never reached it (a dropped connection, a Redis restart mid-call), or everything it
-- still holds when it shuts down. Ids no longer its own are just dropped from its list.
-- KEYS[1] its held list
-- ARGV: key prefix, worker id, then the ids
-- Returns the number of jobs put back in their queues.
local prefix, worker = ARGV[1], ARGV[2]
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('LREM', KEYS[1], 1, id) == 1 then
    local k = prefix .. 'job:' .. id
    local f = redis.call('HMGET', k, 'status', 'worker', 'queue')
    if f[1] == 'waiting' then
      redis.call('RPUSH', prefix .. f[3], id)
      n = n + 1
    elseif f[1] == 'running' and f[2] == worker then
      -- The run does not count as an attempt, but it may have done its work (a push that
      -- landed while the worker stopped): `given_back` tells the next run to look first.
      redis.call('HINCRBY', k, 'attempts', -1)
      redis.call('HINCRBY', k, 'given_back', 1)
      redis.call('HSET', k, 'status', 'waiting')
      redis.call('HDEL', k, 'worker', 'started_at')
      redis.call('RPUSH', prefix .. f[3], id)
      tell(k)
      n = n + 1
    end
  end
end
return n
