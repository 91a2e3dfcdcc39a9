-- gitfleet: a worker's heartbeat.
-- KEYS[1] worker zset, KEYS[2] worker info hash
-- ARGV: worker id, then field/value pairs for the info hash
-- Returns 1 when the worker was not registered (first beat, or it had been taken for dead).
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local new = redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
if #ARGV > 1 then
  redis.call('HSET', KEYS[2], 'last_beat_ms', now_ms, unpack(ARGV, 2))
end
return new
