-- gitfleet: a sandbox joins the registry before it is made: who it belongs to, and one more
-- live sandbox for its organization, refused when the organization has its limit already.
-- KEYS[1] its hash <prefix>sandbox:<id>, KEYS[2] its worker's set <prefix>sandboxes:<worker>,
-- KEYS[3] its organization's set <prefix>org-sandboxes:<org> (any key when org is '')
-- ARGV: id, worker, org ('' = none), agent, max live sandboxes of the org (0 = no limit)
-- Returns the organization's live sandboxes, this one included (0 without an org), or the
-- error 'budget_exceeded: ...'.
local id, worker, org, agent, max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = 0
if org ~= '' then
  n = redis.call('SCARD', KEYS[3])
  if max > 0 and n >= max and redis.call('SISMEMBER', KEYS[3], id) == 0 then
    return redis.error_reply('budget_exceeded: organization ' .. org .. ' has ' .. n ..
      ' live sandboxes, its limit (GITFLEET_ORG_MAX_SANDBOXES); release one first')
  end
  n = n + redis.call('SADD', KEYS[3], id)
  redis.call('HSET', KEYS[1], 'org', org)
end
redis.call('HSET', KEYS[1], 'agent', agent, 'worker', worker)
redis.call('SADD', KEYS[2], id)
return n
