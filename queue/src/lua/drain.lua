-- gitfleet: ask a worker to drain, or undo that (`POST /v1/workers/{id}/drain`, `/undrain`).
-- KEYS[1] worker zset, KEYS[2] the worker's info hash
-- ARGV: worker id, 'drain' or 'undrain'
-- The request is a field of the worker's info hash, `drain_requested_ms` (Redis's clock),
-- not a message: the worker reads it back at every beat (heartbeat.lua) and every fetch
-- (fetch.lua refuses to start a job from the moment it is set), and producers' enqueue.lua
-- answers a job for its own queue at once. It goes with the hash when the worker leaves.
-- Returns 0 when the worker is not a live one (never was, gone, or declared dead); else 1.
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not beat or tonumber(beat) <= 0 then return 0 end
if ARGV[2] == 'drain' then
  local t = redis.call('TIME')
  -- A second request keeps the first one's time.
  redis.call('HSETNX', KEYS[2], 'drain_requested_ms', t[1] * 1000 + math.floor(t[2] / 1000))
else
  redis.call('HDEL', KEYS[2], 'drain_requested_ms')
end
return 1
