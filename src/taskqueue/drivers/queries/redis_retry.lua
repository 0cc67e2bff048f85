-- retry: failed/cancelled -> pending with attempts reset, due now. KEYS: base. ARGV: id.
local id = ARGV[1]
local key = jk(id)
local state = redis.call('HGET', key, 'state')
if state ~= 'failed' and state ~= 'cancelled' then return 0 end
redis.call('HSET', key, 'attempts', '0', 'available_at', fmt(NOW), 'updated_at', fmt(NOW))
redis.call('HDEL', key, 'failed_at', 'lease_owner', 'lease_expires_at')
set_state(id, state, 'pending', NOW)
wake(place(id))
return 1
