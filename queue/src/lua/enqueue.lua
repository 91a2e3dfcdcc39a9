-- gitfleet: enqueue jobs, one or many of one queue with the same options, in one call (the
-- push script; documented in docs/queue.md).
-- KEYS[1] ready list      <prefix><queue>
-- KEYS[2] delayed zset    <prefix><queue>:delayed
-- KEYS[3] queue set       <prefix>queues
-- KEYS[4] worker zset     <prefix>workers
-- KEYS[5] dead zset       <prefix><queue>:dead
-- KEYS[6] idempotency key <prefix>idem:<org>:<key>   (org '' for none; any key name when
--         ARGV[7] is empty)
-- KEYS[6 + i] job hash of job i, <prefix>job:<id> (i = 1..n; the id is read from the key;
--         n at most a few thousand: Lua's unpack bounds a call's size)
-- ARGV[1] key prefix (e.g. 'gitfleet:')
-- ARGV[2] queue
-- ARGV[3] org: the organization the jobs run for ('' = none: the producer's identity,
--         never read from the args)
-- ARGV[4] delay_ms, ARGV[5] max_attempts (0 = the op's default), ARGV[6] timeout_ms (0 =
--         the op's default): the same for every job of the call
-- ARGV[7] idempotency key ('' = none; with a key, the call holds one job)
-- ARGV[8] idempotency TTL in seconds
-- ARGV[9] idempotency fingerprint ('' = none: what the request that used the key looked
--         like beyond op and args; a reuse of the key with another fingerprint is refused
--         like another job)
-- ARGV[10] max payload bytes
-- ARGV[11] routed worker ('' unless the queue is worker:<id>)
-- ARGV[12] dead-job TTL in seconds
-- ARGV[12 + i] the payload of job i, {"op": ..., "args": {...}}
-- Returns
--   {1, status, enqueued_at, i, error, i, error, ...}: the jobs were created, each with
--     `status`, at `enqueued_at` (unix microseconds, Redis's clock), except those listed by
--     their 1-based index with the error that refused them ('invalid_input: ...'); or
--   {0, status, enqueued_at, job_id}: the idempotency key already names job_id of the same
--     organization (enqueued_at nil for a record gone), nothing enqueued.
-- A call of one job answers its refusal as an error reply. A call-wide mistake (a bad
-- delay, organization or key name) is an error reply for the whole call, and so is an
-- idempotency key already naming a different job (another op or args, or another
-- fingerprint): a 'conflict:' error.
local prefix, queue, org = ARGV[1], ARGV[2], ARGV[3]
local delay_ms = tonumber(ARGV[4])
local idem, idem_ttl, fingerprint = ARGV[7], tonumber(ARGV[8]), ARGV[9]
local max_bytes, routed = tonumber(ARGV[10]), ARGV[11]
local n = #KEYS - 6

if not delay_ms or delay_ms < 0 or delay_ms % 1 ~= 0 then
  return redis.error_reply('invalid_input: delay_ms must be a whole number >= 0')
end
if n < 1 or #ARGV ~= 12 + n then
  return redis.error_reply('invalid_input: expected one payload in ARGV per job key in ' ..
    'KEYS, got ' .. math.max(n, 0) .. ' job keys and ' .. (#ARGV - 12) .. ' payloads')
end
if org ~= '' and (#org > 64 or not string.match(org, '^[%w_][%w_.-]*$')) then
  return redis.error_reply('invalid_input: org must be 1-64 of letters, digits, _, -, . ' ..
    '(not starting with - or .)')
end
if idem ~= '' and n ~= 1 then
  return redis.error_reply('invalid_input: an idempotency key names one job, not ' .. n)
end

-- A job's op, and its agent, task and sandbox ids (what the record needs of a job answered
-- without running, reap.lua), or nil and why it is refused. A payload as gitfleet's own
-- producers write it ({"op":"<name>","args":{...}} with none of those ids) is read
-- without decoding it; any other is decoded and checked in full.
local function parse(payload)
  if #payload > max_bytes then
    return nil, 'invalid_input: payload is ' .. #payload .. ' bytes, over the limit of ' ..
      max_bytes .. ' bytes'
  end
  local op = string.match(payload, '^{"op":"([%w_.:-]+)","args":{')
  if op and string.byte(payload, -1) == 125 and not string.find(payload, '_id"', 1, true) then
    return op, nil
  end
  local ok, job = pcall(cjson.decode, payload)
  if not ok or type(job) ~= 'table' then
    return nil, 'invalid_input: payload is not a JSON object'
  end
  if type(job.op) ~= 'string' or job.op == '' then
    return nil, 'invalid_input: payload has no "op" string'
  end
  if job.args ~= nil and type(job.args) ~= 'table' then
    return nil, 'invalid_input: "args" must be a JSON object'
  end
  local ids
  if type(job.args) == 'table' then
    for _, name in ipairs({'agent_id', 'task_id', 'sandbox_id'}) do
      local v = job.args[name]
      if type(v) == 'string' then
        ids = ids or {}
        ids[#ids + 1] = name
        ids[#ids + 1] = v
      end
    end
  end
  return job.op, ids
end

if idem ~= '' then
  if KEYS[6] ~= prefix .. 'idem:' .. org .. ':' .. idem then
    return redis.error_reply('invalid_input: KEYS[6] must be <prefix>idem:<org>:<key>')
  end
  local payload = ARGV[13]
  local op, err = parse(payload)
  if not op then return redis.error_reply(err) end
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
    return {0, f[1] or 'done', tonumber(f[4]) or false, existing}
  end
  local key = KEYS[7]
  if string.find(key, prefix .. 'job:', 1, true) ~= 1 then
    return redis.error_reply('invalid_input: KEYS[7] must be <prefix>job:<id>')
  end
  redis.call('SET', KEYS[6], string.sub(key, #prefix + 5), 'EX', idem_ttl)
end

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
-- Numbers go to Redis as strings made once: a Lua number is formatted on every call.
local now_us_s = string.format('%d', now_us)

-- What every job's record holds, written by one HSET per job; slots 2 and 6 are the job's.
local fields = {'payload', '', 'queue', queue, 'op', '', 'attempts', '0',
  'max_attempts', string.format('%d', tonumber(ARGV[5]) or 0),
  'timeout_ms', string.format('%d', tonumber(ARGV[6]) or 0), 'enqueued_at', now_us_s}
local function put(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
if idem ~= '' then put('idempotency_key', idem) end
if idem ~= '' and fingerprint ~= '' then put('idempotency_fingerprint', fingerprint) end
if org ~= '' then put('org', org) end

-- A job for a worker that is gone can never run: answer it now.
-- Nor can one for a worker asked to drain: it takes no new job, and its sandboxes go when it
-- has drained. Answered now too, not left waiting in a queue nobody reads.
local status, gone
if routed ~= '' then
  if not redis.call('ZSCORE', KEYS[4], routed) then
    gone = 'is not running; its sandboxes are gone'
  elseif redis.call('HEXISTS', prefix .. 'worker-info:' .. routed,
      'drain_requested_ms') == 1 then
    gone = 'is draining; its sandboxes are going away'
  end
end
if gone then
  status = 'dead'
  put('finished_at', now_us_s)
  put('error', cjson.encode({kind = 'sandbox_not_found',
    message = 'worker ' .. routed .. ' ' .. gone}))
elseif delay_ms > 0 then
  status = 'delayed'
  put('run_at', string.format('%d', now_us + delay_ms * 1000))
else
  status = 'waiting'
end
put('status', status)
local base = #fields
local score = string.format('%d', status == 'dead' and now_ms or now_ms + delay_ms)

local out = {1, status, now_us}
local ids, scored = {}, {}
local job_prefix = prefix .. 'job:'
local id_from = #job_prefix + 1
for i = 1, n do
  local key, payload = KEYS[6 + i], ARGV[12 + i]
  local op, extra
  if string.find(key, job_prefix, 1, true) ~= 1 or #key == #job_prefix then
    extra = 'invalid_input: KEYS[' .. (6 + i) .. '] must be <prefix>job:<id>'
  else
    op, extra = parse(payload)
  end
  if not op then
    if n == 1 then return redis.error_reply(extra) end
    out[#out + 1] = i
    out[#out + 1] = extra
  else
    fields[2] = payload
    fields[6] = op
    local m = base
    if extra then
      for j = 1, #extra do fields[base + j] = extra[j] end
      m = base + #extra
    end
    redis.call('HSET', key, unpack(fields, 1, m))
    local id = string.sub(key, id_from)
    ids[#ids + 1] = id
    scored[#scored + 1] = score
    scored[#scored + 1] = id
    if status == 'dead' then redis.call('EXPIRE', key, tonumber(ARGV[12])) end
  end
end

if #ids > 0 then
  if status == 'dead' then
    redis.call('ZADD', KEYS[5], unpack(scored))
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[12]))
  else
    redis.call('SADD', KEYS[3], queue)
    if status == 'delayed' then
      redis.call('ZADD', KEYS[2], unpack(scored))
    else
      redis.call('LPUSH', KEYS[1], unpack(ids))
    end
  end
end
return out
