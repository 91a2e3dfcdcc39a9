-- gitfleet: by-hand actions on dead and delayed jobs, one bounded chunk a call.
--
-- Mode `scan`: reads up to ARGV[9] members of one dead or delayed set, from a cursor, and
-- answers the ids among them that match a filter (nothing is changed).
--   KEYS[1] the set: <prefix><q>:dead or <prefix><q>:delayed
--   ARGV: prefix, 'scan', status ('dead' | 'delayed'), op ('' any), org ('' any),
--         enqueued from (µs, '' open), enqueued before (µs, '' open),
--         cursor score ('-inf' to start), cursor skip, chunk
--   Returns {ids, next score ('' when the set is read to its end), next skip}. The cursor
--   is the score to start at (inclusive) and how many members of that score were read
--   already, so members that share a score (many jobs dead in one millisecond) are neither
--   skipped nor read twice while the set does not change.
--
-- Mode `act`: does one action on the given ids (at most a chunk), each only if it still
-- matches the filter and is still in the state the action needs: a job that changed state
-- since the scan (a delayed job promoted and started, a dead job retried by someone else)
-- is skipped, not acted on.
--   KEYS[1] the set (as above), KEYS[2] the queue's ready list <prefix><q>
--   ARGV: prefix, 'act', status, op, org, enqueued from, enqueued before, action ('retry' |
--         'delete' | 'run_now'), queue name, then the ids
--   Returns {acted, skipped}: acted a flat list of 7 per job: id, op, org ('' none),
--   attempts, given_back, enqueued_at (µs, '' unknown), error JSON ('' none).
local set, prefix, mode, status = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local op, org = ARGV[4], ARGV[5]
local from_us, to_us = tonumber(ARGV[6]), tonumber(ARGV[7])

-- f: status, op, org, enqueued_at of a job hash.
local function matches(f)
  if f[1] ~= status then return false end
  if op ~= '' and f[2] ~= op then return false end
  if org ~= '' and f[3] ~= org then return false end
  if from_us or to_us then
    local at = tonumber(f[4])
    if not at then return false end
    if from_us and at < from_us then return false end
    if to_us and at >= to_us then return false end
  end
  return true
end

if mode == 'scan' then
  local score, skip, limit = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
  local page = redis.call('ZRANGE', set, score, '+inf', 'BYSCORE', 'LIMIT', skip, limit, 'WITHSCORES')
  local ids, last, ties = {}, nil, 0
  for i = 1, #page, 2 do
    local id, s = page[i], page[i + 1]
    if s == last then ties = ties + 1 else last, ties = s, 1 end
    local f = redis.call('HMGET', prefix .. 'job:' .. id, 'status', 'op', 'org', 'enqueued_at')
    if matches(f) then ids[#ids + 1] = id end
  end
  if #page / 2 < limit then return {ids, '', 0} end
  if last == score then ties = ties + skip end
  return {ids, last, ties}
end

if mode ~= 'act' then return redis.error_reply('invalid_input: bulk.lua: no mode ' .. mode) end
local action, queue = ARGV[8], ARGV[9]
local ready = KEYS[2]
local t = redis.call('TIME')
local now_us = t[1] * 1000000 + t[2]
local acted, skipped = {}, 0
for i = 10, #ARGV do
  local id = ARGV[i]
  local k = prefix .. 'job:' .. id
  local f = redis.call('HMGET', k, 'status', 'op', 'org', 'enqueued_at', 'queue', 'attempts',
    'given_back', 'error')
  local done = false
  if f[5] == queue and matches(f) and redis.call('ZREM', set, id) == 1 then
    if action == 'retry' then
      -- As retry_dead.lua: back to its queue with a fresh set of attempts.
      redis.call('PERSIST', k)
      redis.call('DEL', k .. ':wake')
      redis.call('HSET', k, 'status', 'waiting', 'attempts', 0)
      redis.call('HDEL', k, 'finished_at', 'started_at', 'worker')
      redis.call('LPUSH', ready, id)
      tell(k)
    elseif action == 'run_now' then
      -- As promote.lua would once it is due: it joins its queue's backlog now.
      redis.call('HSET', k, 'status', 'waiting', 'run_at', now_us)
      redis.call('LPUSH', ready, id)
      tell(k)
    else
      redis.call('DEL', k, k .. ':wake', k .. ':events')
    end
    done = true
  end
  if done then
    local n = #acted
    acted[n + 1] = id
    acted[n + 2] = f[2] or ''
    acted[n + 3] = f[3] or ''
    acted[n + 4] = f[6] or '0'
    acted[n + 5] = f[7] or '0'
    acted[n + 6] = f[4] or ''
    acted[n + 7] = f[8] or ''
  else
    skipped = skipped + 1
  end
end
return {acted, skipped}
