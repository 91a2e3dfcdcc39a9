-- gitfleet: `tell`, put before every script that changes a job's state (scripts.rs joins
-- them). A watched job (`waiters` set: someone waits on it or streams its events) logs each
-- change to `<job>:events`, a stream of snapshots of its state fields just after the change
-- (inspect.rs reads it). An unwatched job costs one field read, or none when the caller has
-- read `waiters` already and passes `watched`. `ttl`: how long the log outlives the change.
local function tell(k, watched, ttl)
  if watched == nil then watched = redis.call('HEXISTS', k, 'waiters') == 1 end
  if not watched then return end
  local s = redis.call('HMGET', k, 'status', 'attempts', 'worker', 'given_back', 'started_at',
    'finished_at', 'run_at')
  local e = k .. ':events'
  redis.call('XADD', e, 'MAXLEN', '~', 64, '*', 'status', s[1], 'attempts', s[2] or '0',
    'worker', s[3] or '', 'given_back', s[4] or '0', 'started_at', s[5] or '',
    'finished_at', s[6] or '', 'run_at', s[7] or '')
  redis.call('EXPIRE', e, ttl or 86400)
end
