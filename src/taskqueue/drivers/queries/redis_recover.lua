-- recover: expired leases go back to retrying, or to failed when attempts are spent.
-- KEYS: base. ARGV: the most jobs to recover in this call. Returns their ids.
local expired = redis.call('ZRANGEBYSCORE', k('processing'), '-inf', '(' .. fmt(NOW),
  'LIMIT', 0, tonumber(ARGV[1]))
local woke = 0
for _, id in ipairs(expired) do
  local key = jk(id)
  local v = redis.call('HMGET', key, 'attempts', 'max_attempts', 'lease_owner')
  local attempts, max_attempts = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  redis.call('HSET', key, 'exception', 'LeaseExpired: worker ' .. (v[3] or '?')
    .. ' stopped renewing its lease (attempt ' .. attempts .. ' of ' .. max_attempts .. ')',
    'available_at', fmt(NOW), 'updated_at', fmt(NOW))
  redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
  if attempts >= max_attempts then
    redis.call('HSET', key, 'failed_at', fmt(NOW))
    set_state(id, 'processing', 'failed', NOW)
    key_on_finish(id)
  else
    set_state(id, 'processing', 'retrying', NOW)
    woke = woke + place(id)
  end
end
wake(woke)
return expired
