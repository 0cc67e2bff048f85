-- cancel: pending/retrying/processing -> cancelled. The lease epoch is kept, so a running
-- worker learns of it at its next heartbeat. KEYS: base. ARGV: id, reason.
local id = ARGV[1]
local key = jk(id)
local v = redis.call('HMGET', key, 'state', 'failed_at')
local state = v[1]
if state ~= 'pending' and state ~= 'retrying' and state ~= 'processing' then return 0 end
unplace(id)
redis.call('HSET', key, 'exception', ARGV[2], 'updated_at', fmt(NOW))
redis.call('HDEL', key, 'lease_owner', 'lease_expires_at')
set_state(id, state, 'cancelled', tonumber(v[2]) or NOW)
key_on_finish(id)
return 1
