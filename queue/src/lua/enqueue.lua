-- gitfleet: enqueue one job (the push script; documented in docs/queue.md).
-- KEYS[1] job hash        <prefix>job:<id>
-- KEYS[2] ready list      <prefix><queue>
-- KEYS[3] delayed zset    <prefix><queue>:delayed
-- KEYS[4] queue set       <prefix>queues
-- KEYS[5] worker zset     <prefix>workers
-- KEYS[6] idempotency key <prefix>idem:<key>   (any key name when ARGV[7] is empty)
-- KEYS[7] dead zset       <prefix><queue>:dead
-- ARGV: id, queue, payload, delay_ms, max_attempts (0 = the op's default),
--       timeout_ms (0 = the op's default), idempotency_key ('' = none), idempotency_ttl_s,
--       max_payload_bytes, routed_worker ('' unless the queue is worker:<id>), dead_ttl_s,
--       key prefix (e.g. 'gitfleet:')
-- Returns {job_id, status, created (1) or found by idempotency key (0)}.
local id, queue, payload = ARGV[1], ARGV[2], ARGV[3]
local delay_ms = tonumber(ARGV[4])
local idem, idem_ttl = ARGV[7], tonumber(ARGV[8])
local max_bytes, routed = tonumber(ARGV[9]), ARGV[10]

if not delay_ms or delay_ms < 0 then
  return redis.error_reply('invalid_input: delay_ms must be a whole number >= 0')
end
if #payload > max_bytes then
  return redis.error_reply('invalid_input: payload is ' .. #payload ..
    ' bytes, over the limit of ' .. max_bytes .. ' bytes')
end
local ok, job = pcall(cjson.decode, payload)
if not ok or type(job) ~= 'table' then
  return redis.error_reply('invalid_input: payload is not a JSON object')
end
if type(job.op) ~= 'string' or job.op == '' then
  return redis.error_reply('invalid_input: payload has no "op" string')
end
if job.args ~= nil and type(job.args) ~= 'table' then
  return redis.error_reply('invalid_input: "args" must be a JSON object')
end

if idem ~= '' then
  local existing = redis.call('GET', KEYS[6])
  if existing then
    local st = redis.call('HGET', ARGV[12] .. 'job:' .. existing, 'status')
    -- A record can only vanish by expiring after it finished.
    return {existing, st or 'done', 0}
  end
  redis.call('SET', KEYS[6], id, 'EX', idem_ttl)
end

local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = math.floor(now_us / 1000)

redis.call('HSET', KEYS[1],
  'payload', payload, 'queue', queue, 'op', job.op, 'attempts', 0,
  'max_attempts', tonumber(ARGV[5]) or 0, 'timeout_ms', tonumber(ARGV[6]) or 0,
  'enqueued_at', now_us)
if idem ~= '' then redis.call('HSET', KEYS[1], 'idempotency_key', idem) end

-- A job for a worker that is gone can never run: answer it now.
if routed ~= '' and not redis.call('ZSCORE', KEYS[5], routed) then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'finished_at', now_us, 'error',
    cjson.encode({kind = 'sandbox_not_found',
      message = 'worker ' .. routed .. ' is not running; its sandboxes are gone'}))
  redis.call('ZADD', KEYS[7], now_ms, id)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[11]))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[11]))
  return {id, 'dead', 1}
end
redis.call('SADD', KEYS[4], queue)

if delay_ms > 0 then
  redis.call('HSET', KEYS[1], 'status', 'delayed', 'run_at', now_us + delay_ms * 1000)
  redis.call('ZADD', KEYS[3], now_ms + delay_ms, id)
  return {id, 'delayed', 1}
end
redis.call('HSET', KEYS[1], 'status', 'waiting')
redis.call('LPUSH', KEYS[2], id)
return {id, 'waiting', 1}
