-- complete: processing -> completed under the fencing guard, then release dependents (each
-- edge once: one already satisfied by a failed parent let run anyway is not counted again).
-- KEYS: base. ARGV: id, epoch, result ('' = none, else '=' .. result).
-- Returns {0} when the lease is not held, else {1, dependents living in other queues...}.
local id, epoch, result = ARGV[1], ARGV[2], ARGV[3]
if not holds(id, epoch) then return {0} end
local key = jk(id)
redis.call('HSET', key, 'completed_at', fmt(NOW), 'updated_at', fmt(NOW), 'progress', '100')
if result == '' then
  redis.call('HDEL', key, 'result', 'lease_owner', 'lease_expires_at')
else
  redis.call('HSET', key, 'result', string.sub(result, 2))
  redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
end
set_state(id, 'processing', 'completed', NOW)
key_on_finish(id)

local out, woke = {1}, 0
for _, child in ipairs(redis.call('SMEMBERS', k('dependents:' .. id))) do
  if redis.call('EXISTS', jk(child)) == 1 then
    woke = woke + unblock(child, id)
  else
    out[#out + 1] = child
  end
end
redis.call('DEL', k('dependents:' .. id))
wake(woke)
return out
