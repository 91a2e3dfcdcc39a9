-- gitfleet: enqueue one job (the push script; documented in docs/queue.md).
-- KEYS[1] job hash        <prefix>job:<id>
-- KEYS[2] ready list      <prefix><queue>
-- KEYS[3] delayed zset    <prefix><queue>:delayed
-- KEYS[4] queue set       <prefix>queues
-- KEYS[5] worker zset     <prefix>workers
-- KEYS[6] idempotency key <prefix>idem:<org>:<key>   (org '' for none; any key name when
--         ARGV[7] is empty)
-- KEYS[7] dead zset       <prefix><queue>:dead
-- ARGV: id, queue, payload, delay_ms, max_attempts (0 = the op's default),
--       timeout_ms (0 = the op's default), idempotency_key ('' = none), idempotency_ttl_s,
--       max_payload_bytes, routed_worker ('' unless the queue is worker:<id>), dead_ttl_s,
--       key prefix (e.g. 'gitfleet:'), org (the organization the job runs for, '' = none:
--       the producer's identity, never read from the args), idempotency fingerprint ('' =
--       none: what the request that used the key looked like beyond op and args; a reuse
--       of the key with another fingerprint is refused like another job)
-- Returns {job_id, status, created (1) or found by idempotency key (0), enqueued_at (unix
-- microseconds, Redis's clock; nil for a record gone)}. An idempotency key
-- already naming a different job (another op or args) of the same organization is refused
-- with a 'conflict:' error.
local id, queue, payload = ARGV[1], ARGV[2], ARGV[3]
local delay_ms = tonumber(ARGV[4])
local idem, idem_ttl = ARGV[7], tonumber(ARGV[8])
local max_bytes, routed = tonumber(ARGV[9]), ARGV[10]
local prefix, org = ARGV[12], ARGV[13] or ''
local fingerprint = ARGV[14] or ''

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

if org ~= '' and (#org > 64 or not string.match(org, '^[%w_][%w_.-]*$')) then
  return redis.error_reply('invalid_input: org must be 1-64 of letters, digits, _, -, . ' ..
    '(not starting with - or .)')
end

if idem ~= '' then
  if KEYS[6] ~= prefix .. 'idem:' .. org .. ':' .. idem then
    return redis.error_reply('invalid_input: KEYS[6] must be <prefix>idem:<org>:<key>')
  end
  local existing = redis.call('GET', KEYS[6])
  if existing then
    local f = redis.call('HMGET', prefix .. 'job:' .. existing, 'status', 'payload',
      'idempotency_fingerprint', 'enqueued_at')
    if f[2] and f[2] ~= payload then
      return redis.error_reply('conflict: idempotency key "' .. idem .. '" already names ' ..
        'job ' .. existing .. ', a different job (op or args)')
    end
    if f[2] and (f[3] or '') ~= fingerprint then
      return redis.error_reply('conflict: idempotency key "' .. idem .. '" already names ' ..
        'job ' .. existing .. ', enqueued by a different request')
    end
    -- A record can only vanish by expiring after it finished.
    return {existing, f[1] or 'done', 0, f[4]}
  end
  redis.call('SET', KEYS[6], id, 'EX', idem_ttl)
end

local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local now_ms = math.floor(now_us / 1000)

-- The record is written by one HSET, whatever the job's path.
local fields = {'payload', payload, 'queue', queue, 'op', job.op, 'attempts', 0,
  'max_attempts', tonumber(ARGV[5]) or 0, 'timeout_ms', tonumber(ARGV[6]) or 0,
  'enqueued_at', now_us}
local function put(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
if idem ~= '' then put('idempotency_key', idem) end
if idem ~= '' and fingerprint ~= '' then put('idempotency_fingerprint', fingerprint) end
if org ~= '' then put('org', org) end
-- What the record needs of a job that is answered without running (reap.lua), kept here so
-- that nothing later decodes a payload inside Redis.
if type(job.args) == 'table' then
  for _, name in ipairs({'agent_id', 'task_id', 'sandbox_id'}) do
    local v = job.args[name]
    if type(v) == 'string' then put(name, v) end
  end
end

-- A job for a worker that is gone can never run: answer it now.
if routed ~= '' and not redis.call('ZSCORE', KEYS[5], routed) then
  put('status', 'dead')
  put('finished_at', now_us)
  put('error', cjson.encode({kind = 'sandbox_not_found',
    message = 'worker ' .. routed .. ' is not running; its sandboxes are gone'}))
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('ZADD', KEYS[7], now_ms, id)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[11]))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[11]))
  return {id, 'dead', 1, now_us}
end
-- Nor can one for a worker asked to drain: it takes no new job, and its sandboxes go when it
-- has drained. Answered now too, not left waiting in a queue nobody reads.
if routed ~= '' and redis.call('HEXISTS', prefix .. 'worker-info:' .. routed,
    'drain_requested_ms') == 1 then
  put('status', 'dead')
  put('finished_at', now_us)
  put('error', cjson.encode({kind = 'sandbox_not_found',
    message = 'worker ' .. routed .. ' is draining; its sandboxes are going away'}))
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('ZADD', KEYS[7], now_ms, id)
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[11]))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[11]))
  return {id, 'dead', 1, now_us}
end
redis.call('SADD', KEYS[4], queue)

if delay_ms > 0 then
  put('status', 'delayed')
  put('run_at', now_us + delay_ms * 1000)
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('ZADD', KEYS[3], now_ms + delay_ms, id)
  return {id, 'delayed', 1, now_us}
end
put('status', 'waiting')
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('LPUSH', KEYS[2], id)
return {id, 'waiting', 1, now_us}
