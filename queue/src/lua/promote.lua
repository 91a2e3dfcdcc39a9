-- gitfleet: move due jobs from a queue's delayed set to its ready list, at most ARGV[2] a call
-- (the caller loops while a full chunk came back), so no call holds Redis for long.
-- KEYS[1] delayed zset, KEYS[2] ready list
-- ARGV: key prefix, chunk size
-- Returns {moved, ms until the next delayed job is due (-1 if none)}.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local k = prefix .. 'job:' .. id
  if redis.call('HGET', k, 'status') == 'delayed' then
    redis.call('HSET', k, 'status', 'waiting')
    redis.call('LPUSH', KEYS[2], id)
    tell(k)
  end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if nxt[2] then wait = math.max(0, tonumber(nxt[2]) - now_ms) end
return {#ids, wait}
