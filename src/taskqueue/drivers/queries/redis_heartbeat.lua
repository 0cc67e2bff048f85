-- heartbeat: extend the leases still held. KEYS: base.
-- ARGV: lease (microseconds), then id/epoch pairs. Returns per pair 'e' (extended),
-- 'c' (cancelled while this lease was current) or 'l' (lost).
local expires = NOW + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id, epoch = ARGV[i], ARGV[i + 1]
  local v = redis.call('HMGET', jk(id), 'state', 'lease_epoch')
  if v[1] == 'processing' and v[2] == epoch then
    redis.call('HSET', jk(id), 'lease_expires_at', fmt(expires), 'updated_at', fmt(NOW))
    redis.call('ZADD', k('processing'), fmt(expires), id)
    out[#out + 1] = 'e'
  elseif v[1] == 'cancelled' and v[2] == epoch then
    out[#out + 1] = 'c'
  else
    out[#out + 1] = 'l'
  end
end
return out
