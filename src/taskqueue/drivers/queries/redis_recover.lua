-- recover: leases that ran out, or every lease of a worker process known to be dead. A job
-- that ran (every expired one; a dead worker's started ones) goes back to retrying, or to
-- failed when attempts are spent; a dead worker's job that never started goes back to pending
-- with its attempt refunded.
-- KEYS: base. ARGV: the most expired jobs to recover in this call; a dead worker's id ('' for
-- expired leases); the cause its supervisor saw; the ids it had started as a JSON array, or
-- '*' for all it held. Returns the ids moved.
local owner, cause = ARGV[2], ARGV[3]
local held
if owner == '' then
  held = redis.call('ZRANGEBYSCORE', k('processing'), '-inf', '(' .. fmt(NOW),
    'LIMIT', 0, tonumber(ARGV[1]))
else
  held = {}
  for _, id in ipairs(redis.call('ZRANGE', k('processing'), 0, -1)) do
    if redis.call('HGET', jk(id), 'lease_owner') == owner then held[#held + 1] = id end
  end
end
local started = nil
if owner ~= '' and ARGV[4] ~= '*' then
  started = {}
  for _, id in ipairs(cjson.decode(ARGV[4])) do started[id] = true end
end
local woke = 0
for _, id in ipairs(held) do
  local key = jk(id)
  local v = redis.call('HMGET', key, 'attempts', 'max_attempts', 'lease_owner')
  local attempts, max_attempts = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if started and not started[id] then
    redis.call('HSET', key, 'attempts', math.max(attempts - 1, 0), 'available_at', fmt(NOW),
      'updated_at', fmt(NOW))
    set_state(id, 'processing', 'pending', NOW)
    woke = woke + place(id)
  else
    local reason = cause
    if owner == '' then
      reason = 'LeaseExpired: worker ' .. (v[3] or '?') .. ' stopped renewing its lease'
    end
    reason = reason .. ' (attempt ' .. attempts .. ' of ' .. max_attempts .. ')'
    add_attempt(key, attempts >= max_attempts and 'failed' or 'retrying', reason)
    redis.call('HSET', key, 'exception', reason, 'available_at', fmt(NOW), 'updated_at', fmt(NOW))
    if attempts >= max_attempts then
      redis.call('HSET', key, 'failed_at', fmt(NOW))
      set_state(id, 'processing', 'failed', NOW)
      key_on_finish(id)
    else
      set_state(id, 'processing', 'retrying', NOW)
      woke = woke + place(id)
    end
  end
  redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')  -- (after add_attempt read it)
end
wake(woke)
return held
