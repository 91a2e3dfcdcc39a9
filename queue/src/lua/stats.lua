-- gitfleet: counts for every known queue.
-- KEYS[1] queue set, KEYS[2] worker zset
-- ARGV: key prefix, done_ttl_s, dead_ttl_s
-- Returns a flat array: queue, waiting, running, delayed, done, dead, cancelled, ...
-- (done and cancelled are kept the result TTL, dead jobs the dead TTL)
local prefix = ARGV[1]
local done_ttl, dead_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local running = {}
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  for _, id in ipairs(redis.call('LRANGE', prefix .. 'held:' .. w, 0, -1)) do
    local f = redis.call('HMGET', prefix .. 'job:' .. id, 'status', 'queue')
    if f[1] == 'running' then running[f[2]] = (running[f[2]] or 0) + 1 end
  end
end
local out = {}
local queues = redis.call('SMEMBERS', KEYS[1])
table.sort(queues)
for _, q in ipairs(queues) do
  out[#out + 1] = q
  out[#out + 1] = redis.call('LLEN', prefix .. q)
  out[#out + 1] = running[q] or 0
  out[#out + 1] = redis.call('ZCARD', prefix .. q .. ':delayed')
  out[#out + 1] = redis.call('ZCOUNT', prefix .. q .. ':done', now_ms - done_ttl * 1000, '+inf')
  out[#out + 1] = redis.call('ZCOUNT', prefix .. q .. ':dead', now_ms - dead_ttl * 1000, '+inf')
  out[#out + 1] = redis.call('ZCOUNT', prefix .. q .. ':cancelled', now_ms - done_ttl * 1000,
    '+inf')
end
return out
