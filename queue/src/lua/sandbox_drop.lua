-- gitfleet: a sandbox leaves the registry (released, or never made).
-- KEYS[1] its hash, KEYS[2] its worker's set; ARGV: id, key prefix
local org = redis.call('HGET', KEYS[1], 'org')
if org then redis.call('SREM', ARGV[2] .. 'org-sandboxes:' .. org, ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
